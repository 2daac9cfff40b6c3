/**
 * The dashboard (GET /ui) on real clusters, seen through headless Chromium (Debian's
 * package, driven by playwright-core; skipped with a message where /usr/bin/chromium is
 * absent): members, leader, commit indexes, a partition and its healing, the chain drawn
 * after a mode switch, a killed leader replaced, the messages between nodes drawn (appends
 * after a write, votes after the kill), no restart control where no supervisor owns the
 * processes, and no controls without --faults. On a cluster of `quorumkv up --faults` (whose
 * supervisor owns the processes): a leader killed from the page and restarted from the page
 * comes back as a follower that catches up; a follower paused from the page is shown paused
 * (the leader sees it unreachable) while writes go on, and resumed from the page it answers
 * again and catches up. Every wait is a condition with a deadline.
 * Leaves docs/images/dashboard.png behind.
 */

import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { TestCluster, http, runCli, startUp, stopUp, waitFor } from './harness.js';

const chromiumPath = '/usr/bin/chromium';
const screenshotPath = fileURLToPath(new URL('../../docs/images/dashboard.png', import.meta.url));

/** One card as the page shows it (its data-* attributes). */
interface Card {
  readonly node: string;
  readonly role: string;
  readonly reachable: string;
  readonly peerReachable: string;
  readonly process: string;
  readonly commit: number;
  readonly term: number;
  readonly lag: string;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

/** Starts Chromium with a fresh profile; null (and a diagnostic) when it is not installed. */
async function openBrowser(t: TestContext): Promise<{ browser: BrowserContext; close: () => Promise<void> } | null> {
  if (!(await exists(chromiumPath))) {
    t.diagnostic(`skipped: ${chromiumPath} is not installed (apt-get install chromium)`);
    return null;
  }
  const { chromium } = await import('playwright-core');
  const profile = await mkdtemp(path.join(tmpdir(), 'qkv-chromium-'));
  try {
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: chromiumPath,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    return {
      browser,
      close: async () => {
        await browser.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
}

/** Opens `url` and collects the page's errors (a page that throws fails the test). */
async function openPage(browser: BrowserContext, url: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  return { page, errors };
}

// Evaluated in the page (strings: this project's TypeScript has no DOM types).
async function cards(page: Page): Promise<Card[]> {
  return (await page.evaluate(`[...document.querySelectorAll('#cards .card')].map((c) => ({
    node: c.dataset.node, role: c.dataset.role, reachable: c.dataset.reachable, peerReachable: c.dataset.peerReachable, process: c.dataset.process,
    commit: Number(c.dataset.commit), term: Number(c.dataset.term), lag: c.dataset.lag,
  }))`)) as Card[];
}

async function click(page: Page, selector: string): Promise<void> {
  await page.click(selector, { timeout: 2_000 });
}

/** Messages drawn by the page's message view so far, per legend group (append, ack, heartbeat, vote, …). */
async function drawn(page: Page): Promise<Record<string, number>> {
  return (await page.evaluate(`Object.fromEntries([...document.querySelectorAll('#flow-legend li')].map((li) => [li.dataset.group, Number(li.dataset.drawn)]))`)) as Record<string, number>;
}

/** Waits until the page has drawn more `group` messages than `before`; returns the count. */
async function drawnMore(page: Page, group: string, before: number, timeoutMs: number): Promise<number> {
  return waitFor(`more ${group} messages drawn than ${before}`, timeoutMs, async () => {
    const now = (await drawn(page))[group] ?? 0;
    return now > before ? now : null;
  });
}

/** Clicks a control and waits for its answer in #result; returns that text. */
async function act(page: Page, selector: string, wantOk = true, timeoutMs = 10_000): Promise<string> {
  await page.evaluate(`document.getElementById('result').dataset.ok = ''`);
  await click(page, selector);
  const clickedAtMs = Date.now();
  const result = async (): Promise<[string, string]> => (await page.evaluate(`[document.getElementById('result').dataset.ok, document.getElementById('result').textContent]`)) as [string, string];
  try {
    return await waitFor(`the answer to ${selector}`, timeoutMs, async () => {
      const state = await result();
      if (state[0] === 'true' || state[0] === 'false') {
        if (wantOk) assert.equal(state[0], 'true', `${selector} answered: ${state[1]}`);
        return state[1];
      }
      return null;
    });
  } catch (error) {
    // Say where it stuck: whether the page's call was still pending, and what it showed.
    const [ok, text] = await result().catch((): [string, string] => ['?', '?']);
    throw new Error(`${error instanceof Error ? error.message : String(error)} (after ${Date.now() - clickedAtMs} ms the page shows ok=${JSON.stringify(ok)}: ${JSON.stringify(text)})`);
  }
}

function leaders(all: readonly Card[]): Card[] {
  return all.filter((c) => c.role === 'leader');
}

/** The members whose card shows the `action` button now (not hidden). */
async function offered(page: Page, action: string): Promise<string[]> {
  return (await page.evaluate(`[...document.querySelectorAll('button[data-action="${action}"]')].filter((b) => !b.hidden).map((b) => b.dataset.node).sort()`)) as string[];
}

/**
 * On a cluster of quorumkv up --faults, with `page` served by `servedId` and every member up
 * and caught up: pauses another follower from the page, sees it shown paused (and cut off by
 * the leader) while writes go on, and resumes it from the page until it has caught up.
 */
async function pauseAndResumeAFollower(t: TestContext, page: Page, nodes: readonly { id: string; http: string }[], servedId: string, token: string): Promise<void> {
  const all = await cards(page);
  const target = all.find((c) => c.role === 'follower' && c.node !== servedId);
  const leader = leaders(all)[0];
  assert.ok(target !== undefined && leader !== undefined, `a follower to pause besides ${servedId}: ${JSON.stringify(all)}`);
  const httpOf = (id: string): string => nodes.find((n) => n.id === id)?.http ?? '';
  const admin = { authorization: `Bearer ${token}` };
  assert.deepEqual(await offered(page, 'pause'), nodes.map((n) => n.id).sort(), 'Pause on every running member');
  assert.deepEqual(await offered(page, 'resume'), [], 'Resume on none');
  const notPaused = await http(`${httpOf(servedId)}/ui/actions/resume`, 'POST', { node: target.node }, admin);
  assert.deepEqual([notPaused.status, notPaused.body['error']], [409, 'process_running'], 'a running node is not resumed');

  await act(page, `.card[data-node="${target.node}"] button[data-action="pause"]`);
  const pausedAtMs = Date.now();
  await waitFor(`${target.node} shown paused`, 5_000, async () => {
    const card = (await cards(page)).find((c) => c.node === target.node);
    return card?.role === 'paused' && card.reachable === 'false' && card.process === 'paused' ? card : null;
  });
  t.diagnostic(`${target.node} shown paused ${Date.now() - pausedAtMs} ms after Pause was clicked`);
  assert.deepEqual(await offered(page, 'resume'), [target.node], 'Resume on the paused card only');
  assert.equal((await offered(page, 'pause')).includes(target.node), false, 'no Pause on it');
  assert.equal((await offered(page, 'restart')).includes(target.node), false, 'no Restart on it: its process still exists');
  const twice = await http(`${httpOf(servedId)}/ui/actions/pause`, 'POST', { node: target.node }, admin);
  assert.deepEqual([twice.status, twice.body['error']], [409, 'process_not_running'], 'a paused node is not paused again');
  // The others: the leader stops counting it as reachable (its TCP link stays open while paused).
  await waitFor(`the leader to see ${target.node} unreachable`, 10_000, async () => {
    const status = (await http(`${httpOf(leader.node)}/status`)).body as { peers?: { id: string; reachable: boolean }[] };
    return status.peers?.find((p) => p.id === target.node)?.reachable === false ? true : null;
  });
  await waitFor(`${target.node}'s card cut off from the leader`, 5_000, async () => ((await cards(page)).find((c) => c.node === target.node)?.peerReachable === 'false' ? true : null));
  for (let i = 0; i < 5; i++) {
    await page.fill('#kv-key', `while-${target.node}-paused-${i}`);
    await act(page, 'button[data-action="put"]');
  }
  const feed = (await page.evaluate(`[...document.querySelectorAll('#feed li')].map((li) => li.textContent)`)) as string[];
  assert.ok(feed.some((line) => line.includes(`${target.node} is paused`)), `the feed says it is paused: ${feed.join(' | ')}`);

  const resumedAtMs = Date.now();
  await act(page, `.card[data-node="${target.node}"] button[data-action="resume"]`);
  await waitFor(`${target.node} answering /status again`, 10_000, async () => ((await http(`${httpOf(target.node)}/status`)).status === 200 ? true : null));
  const back = await waitFor(`${target.node} a follower again with its lag bar at zero`, 20_000, async () => {
    const now = await cards(page);
    const card = now.find((c) => c.node === target.node);
    return card?.role === 'follower' && card.reachable === 'true' && card.process === 'running' && card.lag === '0' && card.commit === leaders(now)[0]?.commit ? card : null;
  });
  t.diagnostic(`${target.node} shown caught up at commit ${back.commit} ${Date.now() - resumedAtMs} ms after Resume was clicked`);
  assert.deepEqual(await offered(page, 'resume'), [], 'no Resume once it runs');
  const got = await http(`${httpOf(target.node)}/kv/while-${target.node}-paused-4?consistency=local`);
  assert.equal(got.body['value'], 'world', 'it holds a write made while it was paused');
}

test('the dashboard shows the live cluster and drives it through its controls (--faults)', async (t) => {
  const cluster = await TestCluster.start({ nodes: 3, flags: ['--faults'] });
  let closeBrowser: (() => Promise<void>) | null = null;
  try {
    const leaderAtStart = await cluster.waitForLeader();
    const opened = await openBrowser(t);
    if (opened === null) return;
    closeBrowser = opened.close;
    // Served by a follower, so the page outlives the leader it kills.
    const served = cluster.nodes.find((n) => n.id !== leaderAtStart);
    assert.ok(served !== undefined);
    const loadedAtMs = Date.now();
    const { page, errors } = await openPage(opened.browser, `${served.http}/ui`);

    await t.test('three member cards and exactly one leader within 3 s of loading', async () => {
      const shown = await waitFor('three cards, one leader', 3_000 - (Date.now() - loadedAtMs), async () => {
        const all = await cards(page);
        return all.length === 3 && leaders(all).length === 1 ? all : null;
      });
      assert.equal(leaders(shown)[0]?.node, leaderAtStart);
      assert.deepEqual(shown.map((c) => c.node).sort(), ['n1', 'n2', 'n3']);
    });

    await t.test('a key written from the page advances the commit index on every card, and its appends and acks are drawn', async () => {
      const before = Math.max(...(await cards(page)).map((c) => c.commit));
      await drawnMore(page, 'heartbeat', 0, 5_000); // the message view is live before the write
      const drawnBefore = await drawn(page);
      await page.fill('#kv-key', 'from-the-page');
      await page.fill('#kv-value', 'hello');
      await act(page, 'button[data-action="put"]');
      const got = await http(`${served.http}/kv/from-the-page`);
      assert.equal(got.body['value'], 'hello');
      let shown = '';
      await waitFor(
        'every card past the old commit index',
        15_000,
        async () => {
          const all = await cards(page);
          shown = all.map((c) => `${c.node} ${c.role} commit ${c.commit}`).join(', ');
          return all.every((c) => c.commit > before) ? true : null;
        },
        { seen: () => `${shown} (the write was at commit ${before + 1} or later)` },
      );
      await drawnMore(page, 'append', drawnBefore['append'] ?? 0, 5_000);
      await drawnMore(page, 'ack', drawnBefore['ack'] ?? 0, 5_000);
      await page.fill('#kv-value', '');
      await act(page, 'button[data-action="get"]');
      assert.equal(await page.inputValue('#kv-value'), 'hello', 'Get fills the value in');
    });

    const follower = cluster.nodes.find((n) => n.id !== leaderAtStart && n.id !== served.id);
    assert.ok(follower !== undefined);

    await t.test('a follower partitioned from the page shows cut off or lagging, and caught up once healed', async () => {
      await act(page, `.card[data-node="${follower.id}"] button[data-action="partition"]`);
      // Writes it cannot receive make its lag visible too.
      for (let i = 0; i < 5; i++) {
        await page.fill('#kv-key', `during-partition-${i}`);
        await act(page, 'button[data-action="put"]');
      }
      await waitFor(`${follower.id} shown cut off or lagging`, 10_000, async () => {
        const card = (await cards(page)).find((c) => c.node === follower.id);
        return card !== undefined && (card.peerReachable === 'false' || card.reachable === 'false' || Number(card.lag) > 0) ? card : null;
      });
      await act(page, `.card[data-node="${follower.id}"] button[data-action="heal"]`);
      await waitFor(`${follower.id} shown caught up`, 10_000, async () => {
        const all = await cards(page);
        const card = all.find((c) => c.node === follower.id);
        const leaderCommit = leaders(all)[0]?.commit;
        return card !== undefined && card.peerReachable === 'true' && card.lag === '0' && card.commit === leaderCommit ? card : null;
      });
    });

    await t.test('switching to chain from the page draws the chain, leader first', async () => {
      await page.selectOption('#mode-topology', 'chain');
      await act(page, 'button[data-action="mode"]');
      const order = await waitFor('the chain drawn', 5_000, async () => {
        const text = (await page.evaluate(`document.getElementById('chain').dataset.order`)) as string;
        return text.split(',').length === 3 ? text.split(',') : null;
      });
      assert.equal(order[0], leaderAtStart, 'the leader heads the chain');
      assert.deepEqual([...order].sort(), ['n1', 'n2', 'n3']);
      assert.equal(await page.isVisible('#chain-box'), true);
      const links = (await page.evaluate(`document.querySelectorAll('#chain .chain-link').length`)) as number;
      assert.equal(links, 3);
    });

    await t.test('no supervisor owns these processes: no restart, pause or resume control, and their routes say why', async () => {
      for (const action of ['restart', 'pause', 'resume']) {
        assert.equal(await page.evaluate(`document.querySelectorAll('button[data-action="${action}"]').length`), 0, `no ${action} button`);
        const refused = await http(`${served.http}/ui/actions/${action}`, 'POST', { node: follower.id });
        assert.equal(refused.status, 501, `${action}: ${JSON.stringify(refused.body)}`);
        assert.equal(refused.body['error'], 'no_supervisor');
        assert.match(String(refused.body['message']), /No supervisor owns this cluster's processes/);
      }
      assert.equal((await cards(page)).every((c) => c.process === 'null'), true, 'no process states without a supervisor');
    });

    await t.test('killing the leader from the page: a new leader with a higher term within 5 s, the old one marked down, the votes drawn', async () => {
      const old = leaders(await cards(page))[0];
      assert.ok(old !== undefined);
      const votesBefore = (await drawn(page))['vote'] ?? 0;
      await act(page, `.card[data-node="${old.node}"] button[data-action="kill"]`);
      const killedAtMs = Date.now();
      const now = await waitFor('a new leader and the old one down', 5_000, async () => {
        const all = await cards(page);
        const next = leaders(all)[0];
        const dead = all.find((c) => c.node === old.node);
        return next !== undefined && next.node !== old.node && next.term > old.term && dead?.role === 'down' && dead.reachable === 'false' ? all : null;
      });
      t.diagnostic(`new leader ${leaders(now)[0]?.node ?? '?'} shown ${Date.now() - killedAtMs} ms after the kill`);
      await drawnMore(page, 'vote', votesBefore, 5_000);
      // The feed told the story.
      const feed = (await page.evaluate(`[...document.querySelectorAll('#feed li')].map((li) => li.dataset.kind + ': ' + li.textContent)`)) as string[];
      assert.ok(feed.some((line) => line.startsWith('unreachable:') && line.includes(old.node)), `feed names ${old.node} unreachable: ${feed.join(' | ')}`);
      assert.ok(feed.some((line) => line.startsWith('leader:')), `feed has the new leader: ${feed.join(' | ')}`);
      assert.ok(feed.some((line) => line.startsWith('mode:')), `feed has the mode switch: ${feed.join(' | ')}`);
      await mkdir(path.dirname(screenshotPath), { recursive: true });
      await page.screenshot({ path: screenshotPath, fullPage: true });
    });
    assert.deepEqual(errors, [], 'no errors in the page');
  } finally {
    if (closeBrowser !== null) await closeBrowser();
    await cluster.destroy();
  }
});

test('on a cluster of quorumkv up: a leader killed and restarted from the page catches up; a follower paused and resumed from the page too', { timeout: 240_000 }, async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'qkv-dashboard-up-'));
  let running: ChildProcess | null = null;
  let closeBrowser: (() => Promise<void>) | null = null;
  const pids = new Set<number>();
  try {
    const up = startUp(dir, ['--faults']);
    running = up.proc;
    await waitFor('up to print the cluster', 30_000, () => (/is up/.test(up.output()) ? true : null));
    const file = JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: { id: string; http: string; pid: number }[] };
    for (const n of file.nodes) pids.add(n.pid);
    const token = (await readFile(path.join(dir, 'admin-token'), 'utf8')).trim();
    const statusOf = async (url: string) => (await http(`${url}/status`)).body;
    const leaderId = await waitFor('a leader', 10_000, async () => {
      for (const n of file.nodes) if ((await statusOf(n.http).catch((): Record<string, unknown> => ({})))['role'] === 'leader') return n.id;
      return null;
    });
    const served = file.nodes.find((n) => n.id !== leaderId);
    assert.ok(served !== undefined);
    const opened = await openBrowser(t);
    if (opened === null) return;
    closeBrowser = opened.close;
    const { page, errors } = await openPage(opened.browser, `${served.http}/ui#token=${encodeURIComponent(token)}`);
    await waitFor('three cards, one leader', 5_000, async () => {
      const all = await cards(page);
      return all.length === 3 && leaders(all).length === 1 ? all : null;
    });
    const visibleRestarts = `[...document.querySelectorAll('button[data-action="restart"]')].filter((b) => !b.hidden).map((b) => b.dataset.node)`;
    assert.equal(await page.evaluate(`document.querySelectorAll('button[data-action="restart"]').length`), 3, 'a supervisor owns the processes: every card has a restart control');
    // Every member answers (the cards say so once each has been polled): no card offers it.
    await waitFor('no restart offered while every node is up', 10_000, async () => ((await page.evaluate(visibleRestarts)) as string[]).length === 0 ? true : null).catch(() => undefined);
    assert.deepEqual(await page.evaluate(visibleRestarts), [], 'shown on no card while every node is up');
    const running409 = await http(`${served.http}/ui/actions/restart`, 'POST', { node: leaderId }, { authorization: `Bearer ${token}` });
    assert.equal(running409.status, 409, 'a running node is not restarted');
    assert.equal(running409.body['error'], 'process_running');

    const old = leaders(await cards(page))[0];
    assert.ok(old !== undefined);
    await act(page, `.card[data-node="${old.node}"] button[data-action="kill"]`);
    await waitFor('a new leader and the old one down', 5_000, async () => {
      const all = await cards(page);
      const next = leaders(all)[0];
      const dead = all.find((c) => c.node === old.node);
      return next !== undefined && next.node !== old.node && next.term > old.term && dead?.role === 'down' ? all : null;
    });
    // Writes it misses while down: it has something to catch up on.
    for (let i = 0; i < 5; i++) {
      await page.fill('#kv-key', `while-${old.node}-down-${i}`);
      await act(page, 'button[data-action="put"]');
    }
    assert.deepEqual(await page.evaluate(visibleRestarts), [old.node], 'restart is offered on the card that is down');
    const restartedAtMs = Date.now();
    const answer = await act(page, `.card[data-node="${old.node}"] button[data-action="restart"]`, true, 25_000);
    assert.match(answer, /"serving":true/);
    const back = await waitFor(`${old.node} back as a follower with its lag bar at zero`, 20_000, async () => {
      const all = await cards(page);
      const card = all.find((c) => c.node === old.node);
      const leader = leaders(all)[0];
      return card?.role === 'follower' && card.reachable === 'true' && card.lag === '0' && card.commit === leader?.commit ? card : null;
    });
    t.diagnostic(`${old.node} shown caught up at commit ${back.commit} ${Date.now() - restartedAtMs} ms after Restart was clicked`);
    const newPid = (JSON.parse(await readFile(path.join(dir, 'cluster.json'), 'utf8')) as { nodes: { id: string; pid: number }[] }).nodes.find((n) => n.id === old.node)?.pid;
    if (newPid !== undefined) pids.add(newPid);
    assert.deepEqual(await page.evaluate(visibleRestarts), [], 'no restart offered once it is back');
    await pauseAndResumeAFollower(t, page, file.nodes, served.id, token);
    assert.deepEqual(errors, [], 'no errors in the page');
  } finally {
    if (closeBrowser !== null) await closeBrowser();
    if (running !== null) await stopUp(running);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // stopped with up
      }
    }
    await rm(dir, { recursive: true, force: true });
  }
});

test('without --faults the page has no controls and the control routes do not exist', async (t) => {
  const cluster = await TestCluster.start({ nodes: 3 });
  let closeBrowser: (() => Promise<void>) | null = null;
  try {
    await cluster.waitForLeader();
    const first = cluster.nodes[0];
    assert.ok(first !== undefined);
    assert.equal((await http(`${first.http}/admin/die`, 'POST', { id: first.id })).status, 404);
    for (const action of ['partition', 'heal', 'delay', 'die', 'restart', 'pause', 'resume']) {
      assert.equal((await http(`${first.http}/ui/actions/${action}`, 'POST', { node: first.id })).status, 404, `/ui/actions/${action} is 404`);
    }
    const cli = await runCli(['dashboard', '--endpoints', `http://127.0.0.1:1,${first.http}`], 10_000);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(cli.stdout, `${first.http}/ui\n`, 'the first live node');
    assert.match(cli.stderr, /controls: off/);

    const opened = await openBrowser(t);
    if (opened === null) return;
    closeBrowser = opened.close;
    const { page, errors } = await openPage(opened.browser, `${first.http}/ui`);
    await waitFor('three cards', 3_000, async () => ((await cards(page)).length === 3 ? true : null));
    const controls = (await page.evaluate(`[document.querySelectorAll('button').length, document.querySelectorAll('[data-action]').length, document.getElementById('controls') === null]`)) as [number, number, boolean];
    assert.deepEqual(controls, [0, 0, true], 'no buttons, no actions, no control panel');
    assert.deepEqual(errors, [], 'no errors in the page');
  } finally {
    if (closeBrowser !== null) await closeBrowser();
    await cluster.destroy();
  }
});
