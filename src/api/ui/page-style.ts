/**
 * The dashboard's stylesheet, inlined into the page (page.ts): no file to ship beside the
 * code, nothing fetched from elsewhere. Plain CSS that current Chromium and Firefox share.
 */

export const pageStyle: string = `
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --ink: #1d2430; --dim: #667085; --line: #d0d5dd;
  --leader: #1570ef; --ok: #12b76a; --warn: #f79009; --bad: #f04438; --learner: #7a5af8; }
@media (prefers-color-scheme: dark) { :root { --bg: #101418; --card: #1a2027; --ink: #e6e9ee; --dim: #98a2b3; --line: #344054; } }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--ink); }
header { display: flex; flex-wrap: wrap; gap: 12px; align-items: baseline; padding: 12px 20px; border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
main { padding: 16px 20px; display: grid; gap: 16px; }
section > h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: var(--dim); margin: 0 0 8px; }
.dim { color: var(--dim); }
.pill { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; border: 1px solid var(--line); }
#stream[data-state="live"] { border-color: var(--ok); color: var(--ok); }
#stream[data-state="stale"], #stream[data-state="reconnecting"] { border-color: var(--bad); color: var(--bad); }
#mode { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; }
#chain { display: flex; align-items: center; gap: 4px; flex-wrap: wrap; }
.chain-link { padding: 2px 10px; border: 2px solid var(--line); border-radius: 6px; font-weight: 600; }
.chain-link:first-child { border-color: var(--leader); }
.chain-arrow { color: var(--dim); }
#cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(230px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-left: 6px solid var(--line); border-radius: 8px; padding: 10px 12px; display: grid; gap: 6px; }
.card[data-role="leader"] { border-left-color: var(--leader); }
.card[data-role="follower"] { border-left-color: var(--ok); }
.card[data-role="candidate"] { border-left-color: var(--warn); }
.card[data-role="learner"] { border-left-color: var(--learner); }
.card[data-role="down"] { border-left-color: var(--bad); opacity: .7; }
.card[data-role="paused"] { border-left-color: var(--warn); border-left-style: dashed; opacity: .8; }
.card .head { display: flex; justify-content: space-between; align-items: baseline; gap: 8px; }
.card .id { font-size: 18px; font-weight: 700; }
.card .role { font-weight: 600; text-transform: uppercase; font-size: 12px; }
.card dl { display: grid; grid-template-columns: auto 1fr; gap: 0 10px; margin: 0; font-variant-numeric: tabular-nums; }
.card dt { color: var(--dim); }
.card dd { margin: 0; text-align: right; }
.badges { display: flex; gap: 6px; flex-wrap: wrap; }
.badge-good { border-color: var(--ok); color: var(--ok); }
.badge-bad { border-color: var(--bad); color: var(--bad); }
.lag { height: 8px; background: var(--line); border-radius: 4px; overflow: hidden; }
.lag > div { height: 100%; width: 0; background: var(--ok); transition: width .25s; }
.lag[data-level="behind"] > div { background: var(--warn); }
.lag[data-level="cut"] > div { background: var(--bad); }
.card .error { color: var(--bad); font-size: 12px; overflow-wrap: anywhere; }
.card .actions { display: flex; gap: 4px; flex-wrap: wrap; }
button { font: inherit; padding: 3px 10px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: var(--ink); cursor: pointer; }
button:hover { border-color: var(--leader); }
button.danger:hover { border-color: var(--bad); color: var(--bad); }
input, select { font: inherit; padding: 3px 6px; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: var(--ink); }
input[type="number"] { width: 80px; }
#controls { display: grid; gap: 8px; }
#controls .row { display: flex; gap: 8px; align-items: center; flex-wrap: wrap; }
#controls .row > b { min-width: 110px; }
#result { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; min-height: 1.4em; }
#result[data-ok="false"] { color: var(--bad); }
#feed { list-style: none; margin: 0; padding: 0; max-height: 300px; overflow-y: auto; font-size: 13px; border: 1px solid var(--line); border-radius: 8px; background: var(--card); }
#feed li { padding: 3px 10px; border-bottom: 1px solid var(--line); display: flex; gap: 10px; }
#feed li time { color: var(--dim); font-variant-numeric: tabular-nums; }
#feed li[data-kind="leader"], #feed li[data-kind="term"] { color: var(--leader); }
#feed li[data-kind="unreachable"] { color: var(--bad); }
#feed li[data-kind="reachable"] { color: var(--ok); }
#feed li[data-kind="mode"] { color: var(--learner); }
.flow-bar { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; margin-bottom: 6px; }
.flow { display: flex; gap: 16px; flex-wrap: wrap; align-items: flex-start; }
#flow { width: 100%; max-width: 520px; background: var(--card); border: 1px solid var(--line); border-radius: 8px; }
#flow .flow-edges line { stroke: var(--line); stroke-width: 1.5; }
#flow .flow-node circle { fill: var(--card); stroke: var(--dim); stroke-width: 3; }
#flow .flow-node[data-role="leader"] circle { stroke: var(--leader); stroke-width: 4; }
#flow .flow-node[data-role="follower"] circle { stroke: var(--ok); }
#flow .flow-node[data-role="candidate"] circle { stroke: var(--warn); }
#flow .flow-node[data-role="learner"] circle { stroke: var(--learner); }
#flow .flow-node[data-role="down"] circle { stroke: var(--bad); stroke-dasharray: 4 3; }
#flow .flow-node[data-role="paused"] circle { stroke: var(--warn); stroke-dasharray: 2 3; }
#flow .flow-node text { fill: var(--ink); font-weight: 700; font-size: 14px; }
#flow-legend { list-style: none; margin: 0; padding: 0; display: grid; gap: 4px; font-size: 13px; min-width: 300px; }
#flow-legend li > span:not(.swatch) { flex: 1; }
#flow-legend li { display: flex; gap: 8px; align-items: center; }
#flow-legend li b { font-variant-numeric: tabular-nums; min-width: 3em; text-align: right; color: var(--dim); }
#flow-legend .swatch { width: 12px; height: 12px; border-radius: 50%; display: inline-block; }
`;
