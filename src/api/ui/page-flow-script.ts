/**
 * The dashboard's animated view of messages between nodes, inlined after the page's main
 * script (page.ts), which calls renderFlow(snapshot) for each snapshot. The members are
 * circles on a ring (coloured by role); each message the nodes sampled (snapshot.messages,
 * node/message-sampler.ts) becomes a dot that travels its edge, coloured by kind, so a
 * write is seen going out as appends and coming back as acks, and an election as votes.
 *
 * Messages are replayed in the order and with the spacing they were sent, on a clock of the
 * page's own that runs at the chosen speed and stops while paused; the dots take
 * `travelMs` of that clock to cross. Bounded: `flowQueueMax` messages waiting (the oldest
 * are dropped and counted when the page falls behind, e.g. at ¼ speed or in a hidden tab)
 * and `flowDotsMax` dots in flight. Each legend entry counts the dots drawn of its kind
 * (data-drawn), which is what the browser test reads.
 * Plain ES2020 without a build step; no backticks or template placeholders in this text.
 */

export const flowScript: string = `
const flowQueueMax = 500;
const flowDotsMax = 200;
const travelMs = 700;
const svgNs = 'http://www.w3.org/2000/svg';
const flowGroups = [
  { group: 'append', label: 'append (carries entries)', kinds: ['append'], color: '#1570ef' },
  { group: 'ack', label: 'append ack', kinds: ['appendResp'], color: '#12b76a' },
  { group: 'heartbeat', label: 'heartbeat and reply', kinds: ['heartbeat', 'heartbeatResp'], color: '#98a2b3' },
  { group: 'vote', label: 'vote request (and pre-vote)', kinds: ['preVote', 'vote'], color: '#f79009' },
  { group: 'vote-reply', label: 'vote reply', kinds: ['preVoteResp', 'voteResp'], color: '#7a5af8' },
  { group: 'snapshot', label: 'snapshot', kinds: ['snapshot', 'snapshotChunk'], color: '#f04438' },
  { group: 'other', label: 'read index, leadership transfer', kinds: ['readIndex', 'readIndexResp', 'timeoutNow'], color: '#0ba5ec' },
];
const groupOfKind = new Map();
for (const g of flowGroups) for (const k of g.kinds) groupOfKind.set(k, g);
const flow = { queue: [], dots: [], positions: new Map(), circles: new Map(), layoutKey: '', clockMs: null, lastFrameMs: null, paused: false, speed: 1, droppedByPage: 0, legend: new Map() };

function svgEl(tag, attrs) {
  const e = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

function buildLegend() {
  const legend = $('flow-legend');
  for (const g of flowGroups) {
    const count = el('b', { text: '0' });
    const swatch = el('span', { class: 'swatch' });
    swatch.style.background = g.color;
    const li = el('li', { 'data-group': g.group, 'data-drawn': '0' }, [swatch, el('span', { text: g.label }), count]);
    legend.append(li);
    flow.legend.set(g.group, { li, count, drawn: 0 });
  }
  $('flow-pause').addEventListener('change', (ev) => { flow.paused = ev.target.checked; });
  $('flow-speed').addEventListener('change', (ev) => { flow.speed = Number(ev.target.value) || 1; });
}

// The members on a ring, in member order; rebuilt only when the member set changes.
function layoutFlow(nodes) {
  const key = nodes.map((n) => n.id).join(',');
  if (key === flow.layoutKey) return;
  flow.layoutKey = key;
  const svg = $('flow');
  svg.replaceChildren();
  flow.positions.clear();
  flow.circles.clear();
  const cx = 210;
  const cy = 125;
  const ring = nodes.length === 1 ? 0 : 95;
  nodes.forEach((n, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / nodes.length;
    flow.positions.set(n.id, { x: cx + ring * Math.cos(a), y: cy + ring * Math.sin(a) });
  });
  const edges = svgEl('g', { class: 'flow-edges' });
  for (let i = 0; i < nodes.length; i++) for (let j = i + 1; j < nodes.length; j++) {
    const p = flow.positions.get(nodes[i].id);
    const q = flow.positions.get(nodes[j].id);
    edges.append(svgEl('line', { x1: p.x, y1: p.y, x2: q.x, y2: q.y }));
  }
  svg.append(edges, svgEl('g', { id: 'flow-dots' }));
  for (const n of nodes) {
    const p = flow.positions.get(n.id);
    const g = svgEl('g', { class: 'flow-node', 'data-node': n.id });
    const label = svgEl('text', { x: p.x, y: p.y + 5, 'text-anchor': 'middle' });
    label.textContent = n.id;
    g.append(svgEl('circle', { cx: p.x, cy: p.y, r: 24 }), label);
    svg.append(g);
    flow.circles.set(n.id, g);
  }
  for (const d of flow.dots) d.el.remove();
  flow.dots = [];
}

function renderFlow(s) {
  if (flow.legend.size === 0) buildLegend();
  layoutFlow(s.nodes);
  for (const n of s.nodes) {
    const g = flow.circles.get(n.id);
    if (g) g.dataset.role = n.role;
  }
  for (const m of s.messages || []) if (flow.positions.has(m.from) && flow.positions.has(m.to)) flow.queue.push(m);
  if (flow.queue.length > flowQueueMax) flow.droppedByPage += flow.queue.splice(0, flow.queue.length - flowQueueMax).length;
  const counts = s.messageCounts || { sampled: {}, skipped: {} };
  let sampled = 0;
  let skipped = 0;
  for (const g of flowGroups) {
    const a = g.kinds.reduce((t, k) => t + (counts.sampled[k] || 0), 0);
    const b = g.kinds.reduce((t, k) => t + (counts.skipped[k] || 0), 0);
    sampled += a;
    skipped += b;
    const entry = flow.legend.get(g.group);
    if (entry) entry.li.title = a + ' sampled by the nodes since they started, ' + b + ' more sent but not sampled';
  }
  $('flow-note').textContent = 'each node samples a few messages of each kind per second: ' + sampled + ' sampled, ' + skipped + ' not'
    + (flow.droppedByPage ? '; ' + flow.droppedByPage + ' skipped by this page (behind)' : '');
}

function startDot(m) {
  const g = groupOfKind.get(m.kind) || flowGroups[flowGroups.length - 1];
  const entry = flow.legend.get(g.group);
  entry.drawn += 1;
  entry.count.textContent = String(entry.drawn);
  entry.li.dataset.drawn = String(entry.drawn);
  if (flow.dots.length >= flowDotsMax) return;
  const big = m.kind === 'append' && m.entries > 0;
  const dot = svgEl('circle', { r: big ? 6 : 4, class: 'flow-dot', 'data-kind': m.kind, fill: g.color });
  const title = svgEl('title', {});
  title.textContent = m.kind + ' ' + m.from + ' → ' + m.to + ', term ' + m.term + (m.entries ? ', ' + m.entries + ' entries' : '')
    + (m.index === null ? '' : ', index ' + m.index) + (m.ok === null ? '' : m.ok ? ', granted/accepted' : ', refused');
  dot.append(title);
  const holder = $('flow-dots');
  if (holder) holder.append(dot);
  flow.dots.push({ el: dot, from: m.from, to: m.to, startMs: flow.clockMs });
}

function placeDot(d) {
  const p = flow.positions.get(d.from);
  const q = flow.positions.get(d.to);
  if (!p || !q) return false;
  const t = (flow.clockMs - d.startMs) / travelMs;
  if (t >= 1) return false;
  const dx = q.x - p.x;
  const dy = q.y - p.y;
  const len = Math.hypot(dx, dy) || 1;
  const from = 26 / len;
  const along = from + (1 - 2 * from) * Math.max(0, t);
  // Requests and answers travel on two lanes of the same edge (the normal flips with the direction).
  const lane = 5;
  d.el.setAttribute('cx', String(p.x + dx * along - (dy / len) * lane));
  d.el.setAttribute('cy', String(p.y + dy * along + (dx / len) * lane));
  return true;
}

function flowFrame(nowMs) {
  const elapsed = flow.lastFrameMs === null ? 0 : Math.min(250, nowMs - flow.lastFrameMs);
  flow.lastFrameMs = nowMs;
  if (!flow.paused) {
    if (flow.clockMs !== null) flow.clockMs += elapsed * flow.speed;
    const next = flow.queue[0];
    // Start at the first message; skip quiet stretches longer than a second.
    if (next && (flow.clockMs === null || next.atMs - flow.clockMs > 1000)) flow.clockMs = next.atMs;
    while (flow.queue.length && flow.queue[0].atMs <= flow.clockMs) startDot(flow.queue.shift());
    flow.dots = flow.dots.filter((d) => placeDot(d) || (d.el.remove(), false));
  }
  requestAnimationFrame(flowFrame);
}
requestAnimationFrame(flowFrame);
`;
