/**
 * The dashboard page served at GET /ui: one self-contained HTML document (style and script
 * inline, no request to anywhere but its own node), built once per server. The control
 * panel is part of the document only when `controls` is true (fault injection on): without
 * it the page has no buttons at all, not hidden ones.
 */

import { flowScript } from './page-flow-script.js';
import { pageScript } from './page-script.js';
import { pageStyle } from './page-style.js';

export interface PageOptions {
  /** Put the control panel and the cards' buttons in the page. */
  readonly controls: boolean;
  /**
   * With controls: a supervisor owns the processes, so the cards offer Pause (a member that
   * runs), Resume (one that is paused) and Restart (one that is down).
   */
  readonly supervisor: boolean;
}

const controlPanel = `
<section id="controls" aria-label="controls">
  <h2>Controls (fault injection is on)</h2>
  <div class="row"><b>Key</b>
    <input id="kv-key" placeholder="key" value="hello" aria-label="key">
    <input id="kv-value" placeholder="value" value="world" aria-label="value">
    <button type="button" data-action="put">Put</button>
    <button type="button" data-action="get">Get</button>
  </div>
  <div class="row"><b>Mode</b>
    <label>write quorum <select id="mode-wq"><option>majority</option><option>all</option></select></label>
    <label>topology <select id="mode-topology"><option>star</option><option>chain</option></select></label>
    <button type="button" data-action="mode">Switch mode</button>
  </div>
  <div class="row"><b>Replication delay</b>
    <label>min <input id="delay-min" type="number" min="0" max="60000" value="0"> ms</label>
    <label>max <input id="delay-max" type="number" min="0" max="60000" value="200"> ms</label>
    <label>on <select id="delay-node"><option value="*">every node</option></select></label>
    <button type="button" data-action="delay">Set delay</button>
    <button type="button" data-action="heal-all">Heal every partition</button>
  </div>
  <div id="result" aria-live="polite"></div>
</section>`;

/** The page's HTML. */
export function dashboardPage(options: PageOptions): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>quorumkv dashboard</title>
<style>${pageStyle}</style>
</head>
<body data-controls="${String(options.controls)}" data-supervisor="${String(options.controls && options.supervisor)}">
<header>
  <h1>quorumkv</h1>
  <span class="dim">served by <b id="served-by">…</b></span>
  <span id="stream" class="pill" data-state="connecting">connecting</span>
  <span class="dim">updated <span id="updated">never</span></span>
</header>
<main>
  <section aria-label="replication mode">
    <h2>Cluster</h2>
    <div id="mode">
      <span>leader <b id="leader">–</b></span>
      <span>term <b id="term">–</b></span>
      <span>write quorum <b id="wq">–</b></span>
      <span>topology <b id="topology">–</b></span>
      <span>in sync <b id="insync">–</b></span>
      <span id="chain-box" hidden>chain <span id="chain"></span></span>
    </div>
  </section>
  <section aria-label="members">
    <h2>Members</h2>
    <div id="cards"></div>
  </section>
  <section aria-label="messages between nodes">
    <h2>Messages between nodes</h2>
    <div class="flow-bar">
      <label><input type="checkbox" id="flow-pause"> pause</label>
      <label>speed <select id="flow-speed"><option value="0.25">¼×</option><option value="0.5">½×</option><option value="1" selected>1×</option><option value="2">2×</option></select></label>
      <span id="flow-note" class="dim"></span>
    </div>
    <div class="flow">
      <svg id="flow" viewBox="0 0 420 250" role="img" aria-label="the members, and the messages they send each other as moving dots"></svg>
      <ul id="flow-legend" aria-label="message kinds, with the number drawn"></ul>
    </div>
  </section>
  ${options.controls ? controlPanel : ''}
  <section aria-label="events">
    <h2>Events</h2>
    <p id="feed-empty" class="dim">No events yet: role changes, elections, mode switches and unreachable nodes appear here.</p>
    <ol id="feed"></ol>
  </section>
</main>
<script>${pageScript}${flowScript}</script>
</body>
</html>
`;
}
