import { test } from 'node:test';
import assert from 'node:assert/strict';
import { csvText, machineInfo, reportHtml } from './report.js';

test('CSV cells with commas, quotes or newlines are quoted; empty figures stay empty', () => {
  assert.equal(csvText(['a', 'b'], [['x,y', 'say "hi"'], [1.23456, null]]), 'a,b\n"x,y","say ""hi"""\n1.235,\n');
});

test('report.html is self-contained and escapes what it shows', () => {
  const html = reportHtml({
    kind: 'bench',
    title: 'A <title>',
    command: 'quorumkv bench',
    config: { workloads: ['mixed'] },
    machine: machineInfo(),
    version: '0.1.0',
    startedAt: 'then',
    finishedAt: 'now',
    results: {},
    csv: { header: [], rows: [] },
    tables: [{ title: 'T', header: ['h'], rows: [['<b>']] }],
    charts: [{ name: 'c', svg: '<svg xmlns="http://www.w3.org/2000/svg"></svg>' }],
    notes: [],
  });
  assert.ok(html.startsWith('<!DOCTYPE html>'));
  assert.ok(html.includes('A &lt;title&gt;') && html.includes('&lt;b&gt;'));
  assert.ok(html.includes('<figure class="chart" id="chart-c">'));
  assert.ok(!/<script|<link|src="http/i.test(html));
});
