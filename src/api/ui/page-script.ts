/**
 * The dashboard's script, inlined into the page (page.ts). It opens GET /ui/events (an
 * EventSource, which reconnects by itself) and redraws from each snapshot: one card per
 * member (updated in place, keyed by id, so a button is never replaced under the pointer),
 * the mode and chain, and the event feed. With controls on (fault injection), it also wires
 * the buttons to the node's API and to /ui/actions/*.
 *
 * Must never: build HTML from data (every value goes through textContent, so a key or an
 * error message cannot inject markup), block on a request (every fetch is async and its
 * answer lands in #result), or keep more than `feedItemsMax` feed lines.
 * Plain ES2020 without a build step; no backticks or template placeholders in this text.
 */

export const pageScript: string = `
'use strict';
const CONTROLS = document.body.dataset.controls === 'true';
const SUPERVISOR = document.body.dataset.supervisor === 'true';
const feedItemsMax = 200;
const staleAfterMs = 2000;
const cards = new Map();
let lastSeq = 0;
let lastMessageAtMs = 0;
let latest = null;

function el(tag, attrs, children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'text') e.textContent = v; else if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children || []) e.append(c);
  return e;
}
const $ = (id) => document.getElementById(id);
const show = (v) => (v === null || v === undefined ? '–' : String(v));

function setStream(state, text) {
  const s = $('stream');
  s.dataset.state = state;
  s.textContent = text;
}

function makeCard(id) {
  const f = {};
  const field = (name) => { f[name] = el('dd', { 'data-field': name }); return [el('dt', { text: name }), f[name]]; };
  f.role = el('span', { class: 'role' });
  f.reach = el('span', { class: 'pill' });
  f.sync = el('span', { class: 'pill' });
  f.peer = el('span', { class: 'pill' });
  f.bar = el('div');
  f.lag = el('div', { class: 'lag', title: 'entries behind the leader' }, [f.bar]);
  f.lagText = el('span', { class: 'dim' });
  f.error = el('div', { class: 'error' });
  const rows = [].concat(field('term'), field('commit'), field('acked'), field('applied'), field('last'));
  const card = el('article', { class: 'card', 'data-node': id }, [
    el('div', { class: 'head' }, [el('span', { class: 'id', text: id }), f.role]),
    el('div', { class: 'badges' }, [f.reach, f.peer, f.sync]),
    el('dl', {}, rows),
    el('div', {}, [f.lag, f.lagText]),
    f.error,
  ]);
  if (CONTROLS) {
    const button = (action, text, danger) =>
      el('button', { type: 'button', 'data-action': action, 'data-node': id, class: danger ? 'danger' : '', text });
    card.append(el('div', { class: 'actions' }, [
      button('partition', 'Partition', true), button('heal', 'Heal', false),
      button('transfer', 'Make leader', false), button('kill', 'Kill', true),
    ].concat(SUPERVISOR ? [button('pause', 'Pause', true), button('resume', 'Resume', false), button('restart', 'Restart', false)] : [])));
  }
  return { card, f };
}

function renderCards(s) {
  const container = $('cards');
  const ids = new Set(s.nodes.map((n) => n.id));
  for (const [id, c] of cards) if (!ids.has(id)) { c.card.remove(); cards.delete(id); }
  const lagScale = Math.max(20, ...s.nodes.map((n) => n.lagEntries || 0));
  for (const n of s.nodes) {
    let c = cards.get(n.id);
    if (c === undefined) { c = makeCard(n.id); cards.set(n.id, c); }
    container.append(c.card); // keeps member order; moving a node does not recreate it
    const d = c.card.dataset;
    d.role = n.role;
    d.reachable = String(n.reachable);
    d.process = String(n.process);
    d.peerReachable = String(n.peerReachable);
    d.inSync = String(n.inSync);
    d.commit = String(n.commitIndex);
    d.term = String(n.term);
    d.lag = String(n.lagEntries);
    const raftRole = n.role !== 'down' && n.role !== 'paused';
    c.f.role.textContent = n.role + (raftRole && n.memberRole === 'learner' && n.role !== 'learner' ? ' (learner)' : '');
    c.f.reach.textContent = n.reachable ? 'reachable' : 'unreachable';
    c.f.reach.className = 'pill ' + (n.reachable ? 'badge-good' : 'badge-bad');
    // A node that does not answer is not shown "linked": the leader notices a dead link later than we do.
    const link = n.reachable || n.peerReachable === false ? n.peerReachable : null;
    c.f.peer.textContent = link === false ? 'cut off from leader' : link === true ? 'linked to leader' : '';
    c.f.peer.className = link === null ? '' : 'pill ' + (link ? 'badge-good' : 'badge-bad');
    c.f.sync.textContent = n.inSync ? 'in sync' : 'not in sync';
    c.f.sync.className = 'pill ' + (n.inSync ? 'badge-good' : 'badge-bad');
    c.f.term.textContent = show(n.term);
    c.f.commit.textContent = show(n.commitIndex);
    c.f.acked.textContent = show(n.ackedIndex);
    c.f.applied.textContent = show(n.appliedIndex);
    c.f.last.textContent = show(n.lastIndex);
    const lag = n.lagEntries;
    c.f.bar.style.width = lag === null ? '0' : Math.min(100, Math.max(lag > 0 ? 3 : 0, (100 * lag) / lagScale)) + '%';
    c.f.lag.dataset.level = n.peerReachable === false || !n.reachable ? 'cut' : lag ? 'behind' : 'ok';
    c.f.lagText.textContent = lag === null ? 'lag unknown' : lag === 0 ? 'caught up' : lag + ' entries behind';
    c.f.error.textContent = n.role === 'paused' ? 'paused by the supervisor: Resume wakes it' : n.error || '';
    // Each button where the supervisor (or the node) can do it: Kill and Pause for a member
    // that answers, Resume for a paused process, Restart for one that is down and not paused.
    const paused = n.process === 'paused';
    const shown = { kill: n.reachable, pause: n.reachable && !paused, resume: paused, restart: !n.reachable && !paused };
    for (const [action, visible] of Object.entries(shown)) {
      const b = c.card.querySelector('button[data-action="' + action + '"]');
      if (b) b.hidden = !visible;
    }
  }
}

function renderMode(s) {
  const m = s.mode;
  $('wq').textContent = m ? String(m.writeQuorum) : '–';
  $('topology').textContent = m ? m.topology : '–';
  $('insync').textContent = m ? m.inSync.join(', ') : '–';
  $('leader').textContent = s.leaderId || 'none';
  $('term').textContent = String(s.termMax);
  const chain = $('chain');
  chain.replaceChildren();
  chain.dataset.order = s.chain.join(',');
  s.chain.forEach((id, i) => {
    if (i > 0) chain.append(el('span', { class: 'chain-arrow', text: '→' }));
    chain.append(el('span', { class: 'chain-link', 'data-node': id, text: id }));
  });
  $('chain-box').hidden = s.chain.length === 0;
}

function renderFeed(s) {
  const feed = $('feed');
  const newest = s.events.length ? s.events[s.events.length - 1].seq : 0;
  if (newest < lastSeq) { feed.replaceChildren(); lastSeq = 0; } // the node restarted: its numbering too
  for (const e of s.events) {
    if (e.seq <= lastSeq) continue;
    const at = new Date(e.atMs).toLocaleTimeString();
    feed.prepend(el('li', { 'data-kind': e.kind, 'data-seq': String(e.seq) }, [el('time', { text: at }), el('span', { text: e.text })]));
    lastSeq = e.seq;
  }
  while (feed.children.length > feedItemsMax) feed.lastElementChild.remove();
  $('feed-empty').hidden = feed.children.length > 0;
}

function renderSelects(s) {
  for (const sel of [$('delay-node')]) {
    if (!sel) continue;
    const want = ['*'].concat(s.nodes.map((n) => n.id));
    const have = [...sel.options].map((o) => o.value);
    if (want.join() === have.join()) continue;
    const chosen = sel.value;
    sel.replaceChildren(...want.map((v) => el('option', { value: v, text: v === '*' ? 'every node' : v })));
    if (want.includes(chosen)) sel.value = chosen;
  }
  const wq = $('mode-wq');
  if (wq) {
    const want = ['majority', 'all'].concat(s.nodes.map((_, i) => String(i)));
    if ([...wq.options].map((o) => o.value).join() !== want.join()) {
      wq.replaceChildren(...want.map((v) => el('option', { value: v, text: v })));
    }
  }
}

function render(s) {
  latest = s;
  $('served-by').textContent = s.servedBy;
  $('updated').textContent = new Date(s.atMs).toLocaleTimeString();
  renderCards(s);
  renderMode(s);
  renderFeed(s);
  renderFlow(s); // page-flow-script.ts
  if (CONTROLS) renderSelects(s);
}

function connect() {
  const source = new EventSource('/ui/events');
  source.onopen = () => setStream('live', 'live');
  source.onmessage = (m) => {
    lastMessageAtMs = Date.now();
    setStream('live', 'live');
    try { render(JSON.parse(m.data)); } catch (err) { setStream('stale', 'bad snapshot: ' + err.message); }
  };
  source.onerror = () => setStream('reconnecting', 'stream lost: reconnecting');
}

setInterval(() => {
  if (lastMessageAtMs !== 0 && Date.now() - lastMessageAtMs > staleAfterMs && $('stream').dataset.state === 'live') {
    setStream('stale', 'no update for ' + Math.round((Date.now() - lastMessageAtMs) / 1000) + ' s');
  }
}, 1000);

// --- controls (present only when the node runs with fault injection) ---

// The admin token 'quorumkv dashboard' hands over in the URL's fragment (never sent to a
// server): kept for this tab only, and taken out of the address bar.
const tokenInHash = /(?:^#|&)token=([^&]+)/.exec(location.hash);
if (tokenInHash) {
  sessionStorage.setItem('qkv-token', decodeURIComponent(tokenInHash[1]));
  history.replaceState(null, '', location.pathname + location.search);
}

async function call(label, method, url, body) {
  const result = $('result');
  result.dataset.ok = 'pending';
  result.textContent = label + ' …';
  try {
    const init = { method, headers: {} };
    const token = sessionStorage.getItem('qkv-token');
    if (token) init.headers['authorization'] = 'Bearer ' + token;
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers['content-type'] = 'application/json'; }
    const res = await fetch(url, init);
    const text = await res.text();
    result.dataset.ok = String(res.ok);
    result.textContent = label + ': ' + res.status + ' ' + text + (res.status === 401 ? ' (open the URL that quorumkv dashboard prints: it carries the admin token)' : '');
    return res.ok ? JSON.parse(text || '{}') : null;
  } catch (err) {
    result.dataset.ok = 'false';
    result.textContent = label + ': ' + err.message;
    return null;
  }
}

const keyUrl = () => '/kv/' + encodeURIComponent($('kv-key').value);
const actions = {
  put: () => call('put ' + $('kv-key').value, 'PUT', keyUrl(), { value: $('kv-value').value }),
  get: async () => {
    const got = await call('get ' + $('kv-key').value, 'GET', keyUrl());
    if (got && typeof got.value === 'string') $('kv-value').value = got.value;
  },
  mode: () => {
    const raw = $('mode-wq').value;
    const writeQuorum = /^[0-9]+$/.test(raw) ? Number(raw) : raw;
    return call('mode', 'PUT', '/admin/mode', { writeQuorum, topology: $('mode-topology').value });
  },
  delay: () => {
    const body = { delayMsMin: Number($('delay-min').value), delayMsMax: Number($('delay-max').value) };
    if ($('delay-node').value !== '*') body.node = $('delay-node').value;
    return call('delay', 'POST', '/ui/actions/delay', body);
  },
  'heal-all': () => call('heal every node', 'POST', '/ui/actions/heal', {}),
  partition: (node) => call('partition ' + node, 'POST', '/ui/actions/partition', { node }),
  heal: (node) => call('heal ' + node, 'POST', '/ui/actions/heal', { node }),
  kill: (node) => call('kill ' + node, 'POST', '/ui/actions/die', { node, clean: false }),
  restart: (node) => call('restart ' + node, 'POST', '/ui/actions/restart', { node }),
  pause: (node) => call('pause ' + node, 'POST', '/ui/actions/pause', { node }),
  resume: (node) => call('resume ' + node, 'POST', '/ui/actions/resume', { node }),
  transfer: (node) => call('make ' + node + ' leader', 'POST', '/admin/transfer-leader', { to: node }),
};

if (CONTROLS) {
  document.addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-action]');
    if (!b || !(b.dataset.action in actions)) return;
    void actions[b.dataset.action](b.dataset.node);
  });
}

connect();
`;
