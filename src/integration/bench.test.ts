/**
 * `quorumkv bench` end to end: a short sweep against the cluster
 * `quorumkv up` runs (as `npm start` does, data under ./data), found through
 * ./data/cluster.json with no endpoint given, writes results.csv, results.json and
 * report.html with plausible figures, and the report renders its charts in headless
 * Chromium (Debian's package, driven by playwright-core; skipped with a message where
 * /usr/bin/chromium is absent).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { exists } from '../cli/files.js';
import { mainPath, runCli, startUp, stopUp, waitFor } from './harness.js';

const chromiumPath = '/usr/bin/chromium';


interface OpSummary {
  op: string;
  count: number;
  errors: number;
  misses: number;
  opsPerSec: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  histogram: string;
}

interface Point {
  system: string;
  workload: string;
  concurrency: number;
  opsPerSec: number;
  errors: number;
  elapsedMs: number;
  clientCpuCores: number;
  serverCpuCores: number | null;
  mbPerSec: number;
  path: string;
  footprint?: { name: string; diskBytes: number | null; rssAnonBytes: number | null }[] | null;
  persist: { fsyncsPerSec: number; entriesPerFsync: number; meanMs: number; writeMeanMs: number | null } | null;
  busiestLoopShare?: number | null;
  byOp: OpSummary[];
}

/** Runs `quorumkv ARGS…` in `cwd` with a terminal for its output (util-linux script(1)); everything it wrote. */
async function runOnTerminal(args: readonly string[], cwd: string): Promise<string> {
  const command = [process.execPath, mainPath, ...args].join(' ');
  const { stdout } = await promisify(execFile)('script', ['-qec', command, '/dev/null'], { cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
  return stdout;
}

test('bench --workload mixed --concurrency 5,10,20 --duration 2s against npm start\'s cluster writes a CSV, a JSON and an HTML report with plausible figures, and the HTML renders its charts', { timeout: 180_000 }, async (t) => {
  // The working directory of a user who ran npm start: the cluster's files under ./data.
  const work = await mkdtemp(path.join(tmpdir(), 'qkv-bench-'));
  const out = path.join(work, 'report');
  let up: ChildProcess | null = null;
  try {
    const started = startUp(path.join(work, 'data'), ['--log-level', 'warn']);
    up = started.proc;
    await waitFor('up to report the cluster', 60_000, () => (/is up/.test(started.output()) ? true : null));
    const clusterFile = JSON.parse(await readFile(path.join(work, 'data', 'cluster.json'), 'utf8')) as { nodes: { http: string }[] };
    const endpoints = clusterFile.nodes.map((n) => n.http);

    const run = await runCli(['bench', '--workload', 'mixed', '--concurrency', '5,10,20', '--duration', '2s', '--warmup', '0.5s', '--keys', '500', '--out', out, '--no-progress'], 120_000, work);
    assert.equal(run.code, 0, `bench failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /benchmarking the running cluster of \.\/data\/cluster\.json/);
    assert.doesNotMatch(run.stdout, /starting a \d+-node quorumkv cluster/);
    assert.match(run.stdout, /ops\/s/);
    // Under each point: what part of a write's latency the cluster itself took.
    assert.equal((run.stdout.match(/quorumkv: a write spent \d+\.\d\d ms inside the cluster .*, of \d+\.\d\d ms mean as the client saw it/g) ?? []).length, 3, run.stdout);
    assert.equal((run.stdout.match(/quorumkv: the busiest node's event loop was running \d+ % of the time/g) ?? []).length, 3, run.stdout);

    // On a terminal the bench shows a live line per second: ops/s, p99, errors (script(1)
    // gives it one).
    const tty = await runOnTerminal(['bench', '--workload', 'write', '--concurrency', '2', '--duration', '2.5s', '--warmup', '0.2s', '--keys', '50', '--out', 'none'], work);
    const progressLine = new RegExp(String.raw`\r\u001b\[K\S.* {2}\d+/3 s {2}\d+ ops/s {2}p99 \d+\.\d ms {2}errors 0`);
    assert.match(tty, progressLine, `no progress line in: ${JSON.stringify(tty.slice(0, 2000))}`);

    // results.json: every raw figure plus configuration, machine and version.
    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as {
      kind: string;
      version: string;
      command: string;
      machine: { cores: number; node: string };
      config: { workloads: string[]; concurrency: number[]; durationMs: number; endpoints: string[] | null };
      results: { points: Point[] };
      charts: string[];
    };
    assert.equal(json.kind, 'bench');
    assert.match(json.version, /^\d+\.\d+\.\d+/);
    assert.ok(json.machine.cores >= 1 && json.machine.node.startsWith('v'));
    assert.deepEqual(json.config.workloads, ['mixed']);
    assert.deepEqual(json.config.concurrency, [5, 10, 20]);
    assert.equal(json.config.durationMs, 2000);
    assert.deepEqual(json.config.endpoints, endpoints, 'the bench measured npm start\'s nodes');
    const points = json.results.points;
    assert.deepEqual(points.map((p) => p.concurrency), [5, 10, 20]);
    for (const p of points) {
      assert.equal(p.system, 'quorumkv');
      assert.deepEqual(p.byOp.map((b) => b.op), ['write', 'read', 'all']);
      assert.ok(p.opsPerSec > 5, `c=${p.concurrency}: ${p.opsPerSec} ops/s`);
      assert.ok(p.elapsedMs >= 1900 && p.elapsedMs < 15_000, `measured ${p.elapsedMs} ms`);
      assert.ok(p.errors <= p.byOp[2]!.count / 100, `c=${p.concurrency}: ${p.errors} errors`);
      assert.ok(p.clientCpuCores > 0 && p.clientCpuCores < 2.5, `client CPU ${p.clientCpuCores}`);
      // The nodes' own counters: how often they fsynced and how many entries each fsync carried.
      assert.ok(p.persist !== null && p.persist.fsyncsPerSec > 0 && p.persist.entriesPerFsync >= 1 && p.persist.meanMs > 0, `persist ${JSON.stringify(p.persist)}`);
      for (const b of p.byOp) {
        assert.ok(b.count > 0, `${b.op} count`);
        assert.ok(b.p50Ms > 0 && b.p50Ms <= b.p95Ms && b.p95Ms <= b.p99Ms && b.p99Ms <= b.p999Ms && b.p999Ms <= b.maxMs, `${b.op} percentiles in order: ${JSON.stringify(b)}`);
        assert.ok(b.meanMs > 0 && b.meanMs <= b.maxMs);
        assert.ok(b.histogram.length > 10, 'the HDR histogram is kept');
      }
      const [w, r, all] = p.byOp as [OpSummary, OpSummary, OpSummary];
      assert.equal(all.count, w.count + r.count);
      // The leader's qkv_write_seconds: part of what the client waited for, never more.
      const inside = p.persist?.writeMeanMs ?? null;
      assert.ok(inside !== null && inside > 0 && inside < w.meanMs, `inside the cluster ${inside} ms of a write's mean ${w.meanMs} ms`);
      // The busiest node's event loop ran for part of the window (a share, never more than all of it, up to the readings' skew).
      assert.ok(typeof p.busiestLoopShare === 'number' && p.busiestLoopShare > 0 && p.busiestLoopShare < 1.05, `busiest loop ${p.busiestLoopShare}`);
      // A 50/50 mix: neither side below a third of the operations.
      assert.ok(w.count > all.count / 3 && r.count > all.count / 3, `mix ${w.count}/${r.count}`);
    }

    // results.csv: a header and one row per point and operation type.
    const csv = (await readFile(path.join(out, 'results.csv'), 'utf8')).trim().split('\n');
    const header = (csv[0] ?? '').split(',');
    for (const col of ['system', 'workload', 'concurrency', 'op', 'ops_per_s', 'p50_ms', 'p95_ms', 'p99_ms', 'p999_ms', 'max_ms', 'errors', 'client_cpu_cores', 'fsyncs_per_s', 'entries_per_fsync', 'fsync_mean_ms', 'node_write_mean_ms', 'busiest_loop_share']) assert.ok(header.includes(col), `CSV column ${col}`);
    assert.equal(csv.length, 1 + 3 * 3);
    for (const line of csv.slice(1)) assert.equal(line.split(',').length, header.length, `row ${line}`);

    // report.html: self-contained, with inline SVG charts; the SVG files beside it.
    const html = await readFile(path.join(out, 'report.html'), 'utf8');
    assert.ok(!/<script|<link|src="http|href="http/i.test(html), 'report.html loads nothing from anywhere');
    assert.ok((html.match(/<svg /g) ?? []).length >= 3, 'three charts inline');
    for (const chart of json.charts) assert.ok(await exists(path.join(out, chart)), `${chart} written`);
    assert.ok(json.charts.includes('throughput.svg') && json.charts.includes('latency-mixed-write.svg'));

    if (!(await exists(chromiumPath))) {
      t.diagnostic(`skipped the rendering check: ${chromiumPath} is not installed (apt-get install chromium)`);
      return;
    }
    const { chromium } = await import('playwright-core');
    const profile = await mkdtemp(path.join(tmpdir(), 'qkv-chromium-'));
    // A fresh profile directory per run (playwright passes it as --user-data-dir).
    let browser;
    try {
      browser = await chromium.launchPersistentContext(profile, {
        executablePath: chromiumPath,
        headless: true,
        args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      });
    } catch (error) {
      await rm(profile, { recursive: true, force: true });
      throw error;
    }
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => {
        if (m.type() === 'error') errors.push(m.text());
      });
      await page.goto(pathToFileURL(path.join(out, 'report.html')).href);
      // Evaluated in the page (a string: this project's TypeScript has no DOM types).
      const charts = (await page.evaluate(`[...document.querySelectorAll('figure.chart svg')].map((svg) => {
        const box = svg.getBoundingClientRect();
        const lines = [...svg.querySelectorAll('polyline.series')];
        return {
          id: svg.parentElement.id,
          width: box.width,
          height: box.height,
          lines: lines.length,
          longest: Math.max(0, ...lines.map((l) => l.getTotalLength())),
          points: svg.querySelectorAll('circle').length,
          texts: svg.querySelectorAll('text').length,
        };
      })`)) as { id: string; width: number; height: number; lines: number; longest: number; points: number; texts: number }[];
      assert.deepEqual(errors, [], 'no errors in the page');
      assert.ok(charts.length >= 3, `charts rendered: ${JSON.stringify(charts)}`);
      for (const c of charts) {
        assert.ok(c.width > 300 && c.height > 200, `${c.id} has a size: ${JSON.stringify(c)}`);
        assert.ok(c.lines >= 1 && c.longest > 50, `${c.id} draws its lines: ${JSON.stringify(c)}`);
        assert.ok(c.points >= 3 && c.texts > 5, `${c.id} has points and labels: ${JSON.stringify(c)}`);
      }
      const throughput = charts.find((c) => c.id === 'chart-throughput');
      assert.equal(throughput?.points, 3, 'one point per concurrency level');
      await page.screenshot({ path: path.join(out, 'report.png'), fullPage: true });
    } finally {
      await browser.close();
      await rm(profile, { recursive: true, force: true });
    }
  } finally {
    if (up !== null) await stopUp(up);
    await rm(work, { recursive: true, force: true });
  }
});

test('bench --compare etcd --rounds 2 runs the same workload against quorumkv and a local etcd, alternating, and prints every run and the rounds\' median ratio and range', { timeout: 240_000 }, async (t) => {
  if (!(await exists('/usr/bin/etcd'))) {
    t.skip('etcd is not installed (apt-get install etcd-server)');
    return;
  }
  const out = await mkdtemp(path.join(tmpdir(), 'qkv-bench-etcd-'));
  try {
    // --nodes 3: a cluster of the bench's own, whatever runs in this working directory.
    const run = await runCli(['bench', '--compare', 'etcd', '--rounds', '2', '--nodes', '3', '--workload', 'write', '--concurrency', '8', '--duration', '1s', '--warmup', '0.3s', '--keys', '200', '--out', out, '--no-progress'], 210_000);
    assert.equal(run.code, 0, `bench failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /starting a 3-member etcd cluster on 127\.0\.0\.1/);
    assert.match(run.stdout, /^round 2 of 2$/m);
    assert.equal(run.stdout.match(/^quorumkv\s+write\s+8\s+\d+\s+0\s+write\b/gm)?.length, 2, run.stdout);
    assert.equal(run.stdout.match(/^etcd\s+write\s+8\s+\d+\s+0\s+write\b/gm)?.length, 2, run.stdout);

    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as {
      results: {
        points: (Point & { round?: number })[];
        comparison: { system: string; workload: string; concurrency: number; quorumkvOpsPerSec: number; otherOpsPerSec: number; ratio: number; ratioMin: number; ratioMax: number; rounds: number }[];
      };
    };
    const points = json.results.points;
    assert.deepEqual(points.map((p) => `${p.system} ${p.round ?? '?'}`), ['quorumkv 1', 'etcd 1', 'quorumkv 2', 'etcd 2'], 'the systems alternate, round by round');
    assert.match(run.stdout, /^etcd: etcd3 client \(gRPC\) to every member/m, 'the report says which etcd path ran');
    for (const p of points) assert.ok(p.opsPerSec > 5 && p.byOp.some((b) => b.op === 'write' && b.count > 0), `${p.system}: ${p.opsPerSec} ops/s`);
    assert.equal(json.results.comparison.length, 1);
    const c = json.results.comparison[0]!;
    assert.equal(c.system, 'etcd');
    assert.equal(c.rounds, 2);
    // Two rounds: each system's median is the mean of its two runs, the ratio the mean of the rounds' ratios.
    const ops = (system: string, round: number): number => points.find((p) => p.system === system && p.round === round)!.opsPerSec;
    const ratios = [1, 2].map((r) => ops('quorumkv', r) / ops('etcd', r));
    assert.ok(Math.abs(c.quorumkvOpsPerSec - (ops('quorumkv', 1) + ops('quorumkv', 2)) / 2) < 1e-6);
    assert.ok(Math.abs(c.ratio - (ratios[0]! + ratios[1]!) / 2) < 1e-9);
    assert.ok(Math.abs(c.ratioMin - Math.min(...ratios)) < 1e-9 && Math.abs(c.ratioMax - Math.max(...ratios)) < 1e-9);
    // The ratio line: workload, clients, both medians, the median ratio and the range.
    const line = new RegExp(`^write\\s+8\\s+${c.quorumkvOpsPerSec.toFixed(0)}\\s+${c.otherOpsPerSec.toFixed(0)}\\s+${c.ratio.toFixed(2)}×.*\\(${c.ratioMin.toFixed(2)}–${c.ratioMax.toFixed(2)}×\\)$`, 'm');
    assert.match(run.stdout, line);
    const csv = await readFile(path.join(out, 'results.csv'), 'utf8');
    assert.match(csv.split('\n')[0] ?? '', /,round$/);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('bench refuses path flags that cannot mean what they say, before starting anything', { timeout: 30_000 }, async () => {
  for (const [args, message] of [
    [['--to', 'follower'], /--to follower needs --plain/],
    [['--plain', '--transport', 'grpc'], /--plain sends plain HTTP/],
    [['--compare', 'mongo'], /--compare: "mongo" is not one of etcd, redis/],
    [['--to', 'nowhere'], /--to: "nowhere" is not one of leader, follower, any/],
  ] as const) {
    const run = await runCli(['bench', '--nodes', '3', ...args, '--out', 'none'], 20_000);
    assert.equal(run.code, 2, `${args.join(' ')}: exit code ${run.code}\n${run.stdout}${run.stderr}`);
    assert.match(run.stderr, message);
    assert.doesNotMatch(run.stdout, /starting a/, 'nothing was started');
  }
});

test('bench --workload fill writes each key once and reports MB/s, and each node\'s disk and anonymous memory in the table, the CSV and the JSON', { timeout: 120_000 }, async () => {
  const out = await mkdtemp(path.join(tmpdir(), 'qkv-bench-fill-'));
  try {
    const run = await runCli(['bench', '--nodes', '3', '--workload', 'fill', '--keys', '400', '--value-bytes', '2k', '--concurrency', '8', '--out', out, '--no-progress'], 90_000);
    assert.equal(run.code, 0, `bench failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /every key written once, no warm-up/);
    assert.match(run.stdout, /^system\s+workload\s+clients\s+ops\/s\s+MB\/s\s+errors/m, 'values of 2 KiB: an MB/s column');
    for (const n of ['n1', 'n2', 'n3']) assert.match(run.stdout, new RegExp(`^  quorumkv ${n}: data directory \\d+\\.\\d MiB on disk, anonymous RSS \\d+\\.\\d MiB$`, 'm'));
    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as { results: { points: Point[] } };
    const [p] = json.results.points;
    assert.ok(p !== undefined && p.workload === 'fill');
    assert.equal(p.byOp.find((b) => b.op === 'write')?.count, 400, 'every key once, none twice');
    assert.deepEqual(p.byOp.map((b) => b.op), ['write', 'all'], 'no reads');
    assert.equal(p.errors, 0);
    assert.ok(Math.abs(p.mbPerSec - (p.opsPerSec * 2048) / 1e6) < 1e-6, `MB/s ${p.mbPerSec} for ${p.opsPerSec} ops/s`);
    assert.equal(p.footprint?.length, 3);
    for (const n of p.footprint ?? []) {
      // 400 values of 2 KiB are on every node: its data directory holds at least them.
      assert.ok(n.diskBytes !== null && n.diskBytes >= 400 * 2048, `${n.name} disk ${n.diskBytes}`);
      assert.ok(n.rssAnonBytes !== null && n.rssAnonBytes > 10 * 1024 * 1024, `${n.name} anonymous RSS ${n.rssAnonBytes}`);
    }
    const csv = (await readFile(path.join(out, 'results.csv'), 'utf8')).trim().split('\n');
    const header = (csv[0] ?? '').split(',');
    const row = (csv[1] ?? '').split(',');
    assert.equal(row.length, header.length, 'no cell holds a comma');
    const cell = (name: string): string => row[header.indexOf(name)] ?? '';
    assert.equal(Number(cell('disk_bytes')), (p.footprint ?? []).reduce((a, n) => a + (n.diskBytes ?? 0), 0));
    assert.ok(Number(cell('rss_anon_bytes')) > 0 && Number(cell('mb_per_s')) > 0);
    assert.match(cell('footprint_by_node'), /^n1 disk=\d+ rss_anon=\d+; n2 /);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('bench --plain --to follower --compare etcd drives etcd through its HTTP/JSON gateway at a follower member: zero errors, and the report says so', { timeout: 180_000 }, async (t) => {
  if (!(await exists('/usr/bin/etcd'))) {
    t.skip('etcd is not installed (apt-get install etcd-server)');
    return;
  }
  const out = await mkdtemp(path.join(tmpdir(), 'qkv-bench-etcd-plain-'));
  try {
    const run = await runCli(['bench', '--compare', 'etcd', '--nodes', '3', '--plain', '--to', 'follower', '--workload', 'mixed', '--concurrency', '4', '--duration', '1s', '--warmup', '0.3s', '--keys', '100', '--out', out, '--no-progress'], 150_000);
    assert.equal(run.code, 0, `bench failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^quorumkv: plain HTTP \(one request per operation\) to a follower: http:\/\/127\.0\.0\.1:\d+$/m);
    assert.match(run.stdout, /^etcd: plain HTTP\/JSON gateway \(one request per operation\) to a follower: http:\/\/127\.0\.0\.1:\d+$/m);
    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as { config: { systems: Record<string, { path: string }> }; results: { points: Point[] } };
    assert.match(json.config.systems['etcd']?.path ?? '', /^plain HTTP\/JSON gateway/);
    for (const p of json.results.points) {
      assert.ok(p.opsPerSec > 5, `${p.system}: ${p.opsPerSec} ops/s`);
      assert.equal(p.errors, 0, `${p.system}: ${JSON.stringify(p.byOp.map((b) => b.errors))}`);
      // Reads find the preloaded keys: the gateway's range answers carry the values.
      assert.equal(p.byOp.find((b) => b.op === 'read')?.misses, 0, `${p.system} read misses`);
    }
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});

test('bench --compare redis runs the same workload against a redis primary with two replicas (appendfsync always, WAIT 2)', { timeout: 180_000 }, async (t) => {
  if (!(await exists('/usr/bin/redis-server'))) {
    t.skip('redis-server is not installed (apt-get install redis-server)');
    return;
  }
  const out = await mkdtemp(path.join(tmpdir(), 'qkv-bench-redis-'));
  try {
    const run = await runCli(['bench', '--compare', 'redis', '--nodes', '3', '--workload', 'mixed,fill', '--concurrency', '4', '--duration', '1s', '--warmup', '0.3s', '--keys', '100', '--out', out, '--no-progress'], 150_000);
    assert.equal(run.code, 0, `bench failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /starting redis on 127\.0\.0\.1: a primary and 2 replicas, appendfsync always/);
    assert.match(run.stdout, /^redis: .*each write then WAIT 2; reads from the primary$/m);
    assert.match(run.stdout, /^redis\s+mixed\s+4\s+\d+\s+0\s+write\b/m);
    for (const n of ['primary', 'replica1', 'replica2']) assert.match(run.stdout, new RegExp(`^  redis ${n}: data directory \\d`, 'm'));
    const json = JSON.parse(await readFile(path.join(out, 'results.json'), 'utf8')) as { results: { points: Point[]; comparison: { system: string; workload: string; ratio: number }[] } };
    const redis = json.results.points.filter((p) => p.system === 'redis');
    assert.deepEqual(redis.map((p) => p.workload), ['mixed', 'fill']);
    for (const p of redis) assert.ok(p.opsPerSec > 5 && p.errors === 0, `redis ${p.workload}: ${p.opsPerSec} ops/s, ${p.errors} errors`);
    assert.equal(redis[0]?.byOp.find((b) => b.op === 'read')?.misses, 0, 'reads from the primary see every write');
    assert.deepEqual(json.results.comparison.map((c) => `${c.system} ${c.workload}`), ['redis mixed', 'redis fill']);
    // The replicas hold what the primary acknowledged: their append-only files are not empty.
    const fill = redis[1];
    for (const n of fill?.footprint ?? []) assert.ok((n.diskBytes ?? 0) > 100 * 128, `${n.name} disk ${n.diskBytes}`);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
});
