/**
 * SVG charts for the reports: line charts (throughput or latency against concurrency or
 * W) and grouped bar charts (one bar per mode and metric). Plain SVG 1.1 strings with
 * their own fonts and colours, so a chart renders the same inline in report.html, as a
 * file embedded in a README, and in any browser, with nothing loaded from anywhere.
 * Every data point carries a <title> with its exact figure (a hover tooltip).
 *
 * Must never: depend on a script, a stylesheet or a font file outside the SVG.
 */

export interface Series {
  readonly name: string;
  /** [x, y] pairs; a null y leaves a gap. */
  readonly points: readonly (readonly [number, number | null])[];
  /** Draw dashed (e.g. the comparison system). */
  readonly dashed?: boolean;
  /** Colour; default from the palette by position. */
  readonly color?: string;
}

export interface LineChartSpec {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  /** Logarithmic x axis (base 2), for concurrency sweeps like 1, 16, 64. */
  readonly xLog?: boolean;
  /** Label x ticks with exactly the x values present (e.g. W = 1, 3, 5). */
  readonly xTicksAtData?: boolean;
  readonly width?: number;
  readonly height?: number;
}

export interface BarChartSpec {
  readonly title: string;
  readonly yLabel: string;
  /** Groups along the x axis (e.g. modes). */
  readonly categories: readonly string[];
  /** One bar per series in each group; values[i] belongs to categories[i]. */
  readonly series: readonly { readonly name: string; readonly values: readonly (number | null)[]; readonly color?: string }[];
  readonly width?: number;
  readonly height?: number;
}

export const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];

const font = 'font-family="Helvetica, Arial, sans-serif"';

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round numbers for ticks: 1, 2, 5 × 10^k steps, about `count` of them from 0 to max. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = 0; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if ((ticks[ticks.length - 1] ?? 0) < max) ticks.push(Number((ticks.length * step).toPrecision(12)));
  return ticks;
}

export function formatNumber(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1_000_000) return `${Number((v / 1_000_000).toPrecision(3))}M`;
  if (a >= 10_000) return `${Number((v / 1000).toPrecision(3))}k`;
  if (a >= 100) return String(Math.round(v));
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, '');
  if (a >= 1) return v.toFixed(2).replace(/\.?0+$/, '');
  return Number(v.toPrecision(2)).toString();
}

interface Frame {
  readonly width: number;
  readonly height: number;
  readonly left: number;
  readonly right: number;
  readonly top: number;
  readonly bottom: number;
}

function frameOf(width: number, height: number, legendRows: number): Frame {
  return { width, height, left: 70, right: width - 20, top: 40, bottom: height - 62 - legendRows * 18 };
}

function header(f: Frame, title: string): string {
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.width}" height="${f.height}" viewBox="0 0 ${f.width} ${f.height}" role="img" aria-label="${esc(title)}">` +
    `<rect width="100%" height="100%" fill="#ffffff"/>` +
    `<text x="${f.width / 2}" y="22" text-anchor="middle" ${font} font-size="15" font-weight="bold" fill="#222">${esc(title)}</text>`
  );
}

function yAxis(f: Frame, ticks: readonly number[], yMax: number, label: string): string {
  let out = '';
  for (const t of ticks) {
    const y = f.bottom - (t / yMax) * (f.bottom - f.top);
    out += `<line x1="${f.left}" y1="${y.toFixed(1)}" x2="${f.right}" y2="${y.toFixed(1)}" stroke="#e5e5e5"/>`;
    out += `<text x="${f.left - 6}" y="${(y + 4).toFixed(1)}" text-anchor="end" ${font} font-size="11" fill="#444">${formatNumber(t)}</text>`;
  }
  const mid = (f.top + f.bottom) / 2;
  out += `<text x="16" y="${mid}" text-anchor="middle" transform="rotate(-90 16 ${mid})" ${font} font-size="12" fill="#222">${esc(label)}</text>`;
  out += `<line x1="${f.left}" y1="${f.top}" x2="${f.left}" y2="${f.bottom}" stroke="#444"/>`;
  out += `<line x1="${f.left}" y1="${f.bottom}" x2="${f.right}" y2="${f.bottom}" stroke="#444"/>`;
  return out;
}

function legend(f: Frame, items: readonly { name: string; color: string; dashed: boolean }[]): string {
  let out = '';
  let x = f.left;
  let y = f.bottom + 58;
  for (const item of items) {
    const w = 34 + item.name.length * 6.5;
    if (x + w > f.right && x > f.left) {
      x = f.left;
      y += 18;
    }
    out += `<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${item.color}" stroke-width="2.5"${item.dashed ? ' stroke-dasharray="6 4"' : ''}/>`;
    out += `<text x="${x + 27}" y="${y}" ${font} font-size="11" fill="#222">${esc(item.name)}</text>`;
    x += w;
  }
  return out;
}

function legendRowsFor(width: number, names: readonly string[]): number {
  let rows = 1;
  let x = 70;
  for (const n of names) {
    const w = 34 + n.length * 6.5;
    if (x + w > width - 20 && x > 70) {
      rows++;
      x = 70;
    }
    x += w;
  }
  return rows;
}

/** A line chart with one polyline per series, circles at the points, axes and a legend. */
export function lineChart(spec: LineChartSpec): string {
  const width = spec.width ?? 720;
  const height0 = spec.height ?? 400;
  const rows = legendRowsFor(width, spec.series.map((s) => s.name));
  const f = frameOf(width, height0 + (rows - 1) * 18, rows);
  const xs = [...new Set(spec.series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  const ys = spec.series.flatMap((s) => s.points.map((p) => p[1]).filter((y): y is number => y !== null && Number.isFinite(y)));
  const xLog = spec.xLog === true && xs.length > 0 && (xs[0] ?? 0) > 0;
  const tx = (x: number): number => (xLog ? Math.log2(x) : x);
  const xMin = xs.length > 0 ? tx(xs[0] as number) : 0;
  const xMax = xs.length > 0 ? tx(xs[xs.length - 1] as number) : 1;
  const span = xMax - xMin || 1;
  const padX = xs.length <= 1 ? 0.5 : 0.04 * span;
  const px = (x: number): number => f.left + ((tx(x) - xMin + padX) / (span + 2 * padX)) * (f.right - f.left);
  const yTicks = niceTicks(Math.max(0, ...ys) * 1.05);
  const yMax = yTicks[yTicks.length - 1] as number;
  const py = (y: number): number => f.bottom - (y / yMax) * (f.bottom - f.top);

  let out = header(f, spec.title) + yAxis(f, yTicks, yMax, spec.yLabel);
  const xTicks = spec.xTicksAtData === true || xLog || xs.length <= 12 ? xs : niceTicks(xs[xs.length - 1] as number, 8);
  for (const x of xTicks) {
    out += `<line x1="${px(x).toFixed(1)}" y1="${f.bottom}" x2="${px(x).toFixed(1)}" y2="${f.bottom + 5}" stroke="#444"/>`;
    out += `<text x="${px(x).toFixed(1)}" y="${f.bottom + 18}" text-anchor="middle" ${font} font-size="11" fill="#444">${formatNumber(x)}</text>`;
  }
  out += `<text x="${(f.left + f.right) / 2}" y="${f.bottom + 36}" text-anchor="middle" ${font} font-size="12" fill="#222">${esc(spec.xLabel)}</text>`;

  const items: { name: string; color: string; dashed: boolean }[] = [];
  spec.series.forEach((s, i) => {
    const color = s.color ?? (palette[i % palette.length] as string);
    const dashed = s.dashed === true;
    items.push({ name: s.name, color, dashed });
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    // Split at gaps (null y) so a missing figure is not drawn as a line through it.
    let run: string[] = [];
    const flush = (): void => {
      if (run.length > 1) out += `<polyline class="series" fill="none" stroke="${color}" stroke-width="2.2"${dashed ? ' stroke-dasharray="6 4"' : ''} points="${run.join(' ')}"/>`;
      run = [];
    };
    for (const [x, y] of pts) {
      if (y === null || !Number.isFinite(y)) {
        flush();
        continue;
      }
      run.push(`${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    }
    flush();
    for (const [x, y] of pts) {
      if (y === null || !Number.isFinite(y)) continue;
      out += `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="3.5" fill="${color}"><title>${esc(`${s.name}: ${formatNumber(y)} at ${formatNumber(x)}`)}</title></circle>`;
    }
  });
  out += legend(f, items);
  return out + '</svg>\n';
}

/** Grouped bars: one group per category, one bar per series, value labels on top. */
export function barChart(spec: BarChartSpec): string {
  const width = spec.width ?? 720;
  const height0 = spec.height ?? 400;
  const rows = legendRowsFor(width, spec.series.map((s) => s.name));
  const f = frameOf(width, height0 + (rows - 1) * 18, rows);
  const values = spec.series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  const yTicks = niceTicks(Math.max(0, ...values) * 1.1);
  const yMax = yTicks[yTicks.length - 1] as number;
  const py = (y: number): number => f.bottom - (y / yMax) * (f.bottom - f.top);
  let out = header(f, spec.title) + yAxis(f, yTicks, yMax, spec.yLabel);
  const groupWidth = (f.right - f.left) / Math.max(1, spec.categories.length);
  const barWidth = Math.max(4, (groupWidth * 0.8) / Math.max(1, spec.series.length));
  const items: { name: string; color: string; dashed: boolean }[] = [];
  spec.series.forEach((s, si) => {
    const color = s.color ?? (palette[si % palette.length] as string);
    items.push({ name: s.name, color, dashed: false });
    spec.categories.forEach((c, ci) => {
      const v = s.values[ci];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const x = f.left + ci * groupWidth + groupWidth * 0.1 + si * barWidth;
      const y = py(v);
      out += `<rect class="bar" x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 2).toFixed(1)}" height="${Math.max(0, f.bottom - y).toFixed(1)}" fill="${color}"><title>${esc(`${c} — ${s.name}: ${formatNumber(v)}`)}</title></rect>`;
      out += `<text x="${(x + (barWidth - 2) / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" text-anchor="middle" ${font} font-size="10" fill="#333">${formatNumber(v)}</text>`;
    });
  });
  spec.categories.forEach((c, ci) => {
    const x = f.left + ci * groupWidth + groupWidth / 2;
    out += `<text x="${x.toFixed(1)}" y="${f.bottom + 18}" text-anchor="middle" ${font} font-size="12" fill="#222">${esc(c)}</text>`;
  });
  out += legend(f, items);
  return out + '</svg>\n';
}
