import { test } from 'node:test';
import assert from 'node:assert/strict';
import { barChart, lineChart, niceTicks } from './charts.js';

test('tick marks are round numbers that cover the data', () => {
  assert.deepEqual(niceTicks(1000), [0, 200, 400, 600, 800, 1000]);
  const t = niceTicks(37);
  assert.ok((t[t.length - 1] ?? 0) >= 37);
  assert.deepEqual(niceTicks(0), [0, 1]);
});

test('a line chart is one self-contained SVG with a line per series and a titled point per figure', () => {
  const svg = lineChart({
    title: 'Throughput <vs> concurrency',
    xLabel: 'clients',
    yLabel: 'ops/s',
    xLog: true,
    series: [
      { name: 'quorumkv', points: [[1, 100], [16, 1000], [64, 2000]] },
      { name: 'etcd', points: [[1, 90], [16, null], [64, 1500]], dashed: true },
    ],
  });
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.ok(svg.trim().endsWith('</svg>'));
  assert.ok(!svg.includes('<vs>'), 'text is escaped');
  assert.equal((svg.match(/<polyline class="series"/g) ?? []).length, 1, 'a gap splits the dashed series into single points, which draw no line');
  assert.equal((svg.match(/<circle /g) ?? []).length, 5);
  assert.match(svg, /<title>quorumkv: 2000 at 64<\/title>/);
  assert.ok(!/href=|<script/.test(svg));
});

test('a bar chart draws one bar per category and series with its value', () => {
  const svg = barChart({ title: 'Modes', yLabel: 'ops/s', categories: ['async', 'majority'], series: [{ name: 'ops/s', values: [3000, 1500] }, { name: 'lost', values: [2, null] }] });
  assert.equal((svg.match(/<rect class="bar"/g) ?? []).length, 3);
  assert.match(svg, /async — ops\/s: 3000/);
});
