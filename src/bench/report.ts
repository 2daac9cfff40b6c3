/**
 * Reports of a benchmark or experiment run, written to one directory:
 *
 * - `results.json`: every raw figure (HDR histograms included, compressed base64), the
 *   exact configuration and command line, the machine and the quorumkv version;
 * - `results.csv`: one row per figure set, for spreadsheets and plotting tools;
 * - `report.html`: self-contained (inline CSS and SVG, no script, nothing fetched): the
 *   configuration, the tables and the charts;
 * - one `.svg` file per chart, for a README to embed.
 *
 * Must never: reference anything outside report.html (it is mailed, attached and opened
 * from disk), or drop a figure from results.json that a table shows.
 */

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { cpus, freemem, loadavg, release, totalmem, platform, arch } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface MachineInfo {
  readonly platform: string;
  readonly release: string;
  readonly arch: string;
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly freeMemoryBytes: number;
  readonly loadAverage1m: number;
  readonly node: string;
}

export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    platform: platform(),
    release: release(),
    arch: arch(),
    cpuModel: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryBytes: totalmem(),
    freeMemoryBytes: freemem(),
    loadAverage1m: Math.round((loadavg()[0] ?? 0) * 100) / 100,
    node: process.version,
  };
}

/** The quorumkv version from package.json (two levels above dist/bench/). */
export async function quorumkvVersion(): Promise<string> {
  try {
    const file = fileURLToPath(new URL('../../package.json', import.meta.url));
    const pkg = JSON.parse(await readFile(file, 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export interface ReportTable {
  readonly title: string;
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  readonly note?: string;
}

export interface ReportChart {
  /** File name without extension: `throughput` -> throughput.svg. */
  readonly name: string;
  readonly svg: string;
}

export type CsvCell = string | number | boolean | null;

export interface Report {
  /** `bench`, `experiment quorum`, … */
  readonly kind: string;
  readonly title: string;
  /** The command line that produced it. */
  readonly command: string;
  readonly config: Readonly<Record<string, unknown>>;
  readonly machine: MachineInfo;
  readonly version: string;
  readonly startedAt: string;
  readonly finishedAt: string;
  /** Kind-specific raw figures. */
  readonly results: unknown;
  readonly csv: { readonly header: readonly string[]; readonly rows: readonly (readonly CsvCell[])[] };
  readonly tables: readonly ReportTable[];
  readonly charts: readonly ReportChart[];
  readonly notes: readonly string[];
}

export function csvText(header: readonly string[], rows: readonly (readonly CsvCell[])[]): string {
  const cell = (v: CsvCell): string => {
    if (v === null) return '';
    const s = typeof v === 'number' ? (Number.isInteger(v) ? String(v) : String(Math.round(v * 1000) / 1000)) : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [header.map((h) => cell(h)).join(','), ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n';
}

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function tableHtml(t: ReportTable): string {
  const head = t.header.map((h) => `<th>${esc(h)}</th>`).join('');
  const body = t.rows.map((r) => `<tr>${r.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`).join('\n');
  return `<h2>${esc(t.title)}</h2>\n<table>\n<thead><tr>${head}</tr></thead>\n<tbody>\n${body}\n</tbody>\n</table>${t.note === undefined ? '' : `\n<p class="note">${esc(t.note)}</p>`}`;
}

export function reportHtml(r: Report): string {
  const cfg = Object.entries(r.config)
    .map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === 'string' ? v : JSON.stringify(v))}</td></tr>`)
    .join('\n');
  const m = r.machine;
  const machine = `${m.cores} × ${m.cpuModel}, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, ${m.platform} ${m.release} ${m.arch}, Node ${m.node}, load ${m.loadAverage1m} at start`;
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>${esc(r.title)}</title>
<style>
body { font-family: Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
table.config td { text-align: left; font-family: monospace; }
code { background: #f3f3f3; padding: 1px 4px; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart svg { border: 1px solid #ddd; max-width: 100%; height: auto; }
.note { color: #555; font-size: 0.9em; }
</style>
</head>
<body>
<h1>${esc(r.title)}</h1>
<p><code>${esc(r.command)}</code></p>
<p class="note">quorumkv ${esc(r.version)} · ${esc(machine)} · ${esc(r.startedAt)} – ${esc(r.finishedAt)}</p>
${r.notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
<h2>Charts</h2>
<div class="charts">
${r.charts.map((c) => `<figure class="chart" id="chart-${esc(c.name)}">\n${c.svg}</figure>`).join('\n')}
</div>
${r.tables.map(tableHtml).join('\n')}
<h2>Configuration</h2>
<table class="config">
${cfg}
</table>
<p class="note">Raw figures (HDR histograms included): results.json; one row per figure set: results.csv.</p>
</body>
</html>
`;
}

export interface ReportFiles {
  readonly json: string;
  readonly csv: string;
  readonly html: string;
  readonly svgs: string[];
}

/** What a run fills in; finishReport adds the machine, the version and the finish time. */
export type ReportBody = Omit<Report, 'machine' | 'version' | 'finishedAt'>;

/** Completes a run's report and writes it into `outDir` (none when null). */
export async function finishReport(body: ReportBody, outDir: string | null): Promise<{ report: Report; files: ReportFiles | null }> {
  const { kind, title, command, config, startedAt, ...rest } = body;
  const report: Report = { kind, title, command, config, machine: machineInfo(), version: await quorumkvVersion(), startedAt, finishedAt: new Date().toISOString(), ...rest };
  return { report, files: outDir === null ? null : await writeReport(outDir, report) };
}

/** Writes results.json, results.csv, report.html and the SVGs into `dir`; returns the paths. */
export async function writeReport(dir: string, r: Report): Promise<ReportFiles> {
  await mkdir(dir, { recursive: true });
  const json = path.join(dir, 'results.json');
  const csv = path.join(dir, 'results.csv');
  const html = path.join(dir, 'report.html');
  const { charts, ...rest } = r;
  await writeFile(json, JSON.stringify({ ...rest, charts: charts.map((c) => `${c.name}.svg`) }, null, 2) + '\n');
  await writeFile(csv, csvText(r.csv.header, r.csv.rows));
  await writeFile(html, reportHtml(r));
  const svgs: string[] = [];
  for (const c of charts) {
    const file = path.join(dir, `${c.name}.svg`);
    await writeFile(file, c.svg);
    svgs.push(file);
  }
  return { json, csv, html, svgs };
}

/** `bench-results/<kind>-<YYYYMMDD-HHMMSS>`: the default output directory of a run. */
export function defaultOutDir(kind: string, now = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  const stamp = `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
  return path.join('bench-results', `${kind.replace(/\s+/g, '-')}-${stamp}`);
}
