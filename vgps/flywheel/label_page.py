"""The ``vgps label`` page: HTML, CSS and JavaScript in one string, served by
:mod:`vgps.flywheel.label_server` (no build step, nothing fetched from elsewhere).

The page lists the episodes with their label badges, shows the current episode's camera frame
with a step slider and play/pause, the value trace (Q of the executed action per step, an inline
SVG with intervention steps and the marked step highlighted), the decision of the current step,
and labels with one click (Success / Failure / Skip, then the next unlabelled episode). It
opens at the first unlabelled episode (resume). Keyboard: s success, f failure, k skip,
m mark/unmark the current step as where it went wrong, left/right step, up/down or p/n
previous/next episode, space play/pause.

Usage::

    from vgps.flywheel.label_page import PAGE   # str, served as text/html
"""

from __future__ import annotations

__all__ = ["PAGE"]

_CSS = """
*{box-sizing:border-box} body{font-family:system-ui,sans-serif;margin:0;color:#222;display:flex;
height:100vh} #side{width:300px;overflow-y:auto;border-right:1px solid #ddd;background:#fafafa}
#side h1{font-size:17px;margin:12px} #progress{margin:0 12px 8px;font-size:13px;color:#555}
.ep{padding:6px 12px;border-bottom:1px solid #eee;cursor:pointer;font-size:13px}
.ep:hover{background:#eef3fb} .ep.cur{background:#dbe7fb} .ep .meta{color:#777;font-size:12px}
.badge{display:inline-block;border-radius:9px;padding:0 7px;font-size:11px;color:#fff;
margin-left:4px} .b-success{background:#1e7b34} .b-failure{background:#c0392b}
.b-skip{background:#888} .b-none{background:#bbb} .b-robot{background:#3b6cb7}
.b-int{background:#e67e22} #main{flex:1;overflow-y:auto;padding:14px 20px}
#title{font-size:18px;margin:0} #instr{font-size:15px;margin:4px 0 10px;color:#333}
#top{display:flex;gap:20px;flex-wrap:wrap} #frame{width:384px;height:384px;object-fit:contain;
background:#111;image-rendering:pixelated;border:1px solid #ccc} #noframe{color:#999}
#controls{display:flex;align-items:center;gap:8px;margin:6px 0} #slider{flex:1;min-width:0}
#left{width:384px} #stepinfo{font-size:13px;white-space:nowrap}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left} th{background:#f4f4f4;font-weight:600} .num{font-variant-numeric:tabular-nums}
button{font-size:15px;padding:7px 16px;border-radius:6px;border:1px solid #999;cursor:pointer;
background:#fff} #btn-success{background:#1e7b34;color:#fff;border-color:#1e7b34}
#btn-failure{background:#c0392b;color:#fff;border-color:#c0392b} #labels{margin:0 0 6px;
display:flex;gap:10px;align-items:center} #status{font-size:13px;color:#555}
#trace{width:100%;max-width:900px;height:200px;border:1px solid #ddd;background:#fff}
#keys{font-size:12px;color:#555;margin-top:12px} kbd{border:1px solid #bbb;border-radius:3px;
padding:0 4px;background:#f4f4f4} #decision td{max-width:330px;
word-break:break-word} .err{color:#c0392b;font-weight:600}
"""

_BODY = """
<div id="side"><h1>vgps label</h1><div id="progress"></div><div id="list"></div></div>
<div id="main">
 <p id="title">loading...</p><p id="instr"></p>
 <div id="top">
  <div id="left"><img id="frame" alt="camera frame"><div id="noframe"></div>
   <div id="controls"><button id="btn-play" title="space">&#9654;</button>
    <input id="slider" type="range" min="0" max="0" value="0"><span id="stepinfo"></span></div>
  </div>
  <div><div id="labels">
    <button id="btn-success" title="s">Success</button>
    <button id="btn-failure" title="f">Failure</button>
    <button id="btn-skip" title="k">Skip</button>
    <button id="btn-mark" title="m">Mark step</button></div>
   <div id="status"></div>
   <h3 style="margin:10px 0 6px">Decision</h3><table id="decision"></table></div>
 </div>
 <h3 style="margin:14px 0 4px">Value trace: Q of the executed action per step</h3>
 <svg id="trace" viewBox="0 0 900 200" preserveAspectRatio="none"></svg>
 <div id="keys"><kbd>s</kbd> success &nbsp; <kbd>f</kbd> failure &nbsp; <kbd>k</kbd> skip
  &nbsp; <kbd>m</kbd> mark / unmark the step where it went wrong &nbsp; <kbd>&larr;</kbd>
  <kbd>&rarr;</kbd> step &nbsp; <kbd>&uarr;</kbd><kbd>&darr;</kbd> or <kbd>p</kbd><kbd>n</kbd>
  previous / next episode &nbsp; <kbd>space</kbd> play / pause. A click on Success, Failure or
  Skip saves the label beside the bag and opens the next unlabelled episode.
  <span style="color:#e67e22">&#9646;</span> intervention
  <span style="color:#c0392b">&#9646;</span> marked step</div>
</div>
"""

_JS = r"""
const S = {episodes: [], n: -1, ep: null, t: 0, mark: null, timer: null, busy: false};
const $ = id => document.getElementById(id);
const fmt = v => (v === null || v === undefined) ? 'n/a' : (typeof v === 'number'
  ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v));
const esc = s => String(s).replace(/[&<>"']/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;',
  '"': '&quot;', "'": '&#39;'}[c]));
async function api(path, body) {
  const opt = body === undefined ? {} : {method: 'POST', body: JSON.stringify(body),
    headers: {'Content-Type': 'application/json'}};
  const r = await fetch(path, opt); const j = await r.json();
  if (!r.ok) throw new Error(j.error || r.statusText); return j;
}
function badge(e) {
  const l = e.label ? e.label.outcome : 'none';
  let h = '<span class="badge b-' + l + '">' + (e.label ? l : 'unlabelled') + '</span>';
  if (e.label && e.label.failed_at_step !== null) h += '<span class="badge b-failure">@' +
    e.label.failed_at_step + '</span>';
  if (e.robot_outcome) h += '<span class="badge b-robot">robot: ' + e.robot_outcome + '</span>';
  if (e.interventions) h += '<span class="badge b-int">' + e.interventions + ' int.</span>';
  return h;
}
function drawList() {
  const done = S.episodes.filter(e => e.label).length;
  $('progress').textContent = done + ' of ' + S.episodes.length + ' episodes labelled';
  $('list').innerHTML = S.episodes.map(e => '<div class="ep' + (e.n === S.n ? ' cur' : '') +
    '" data-n="' + e.n + '" id="ep-' + e.n + '"><b>#' + e.n + '</b> ' + esc(e.task || '') +
    badge(e) + '<div class="meta">' + esc(e.key) + ' &middot; ' + e.steps + ' steps &middot; ' +
    esc(e.end_event || 'no end') + '</div></div>').join('');
  const cur = $('ep-' + S.n); if (cur) cur.scrollIntoView({block: 'nearest'});
}
async function openEpisode(n) {
  if (n < 0 || n >= S.episodes.length) return;
  pause(); S.n = n; drawList();
  let ep;
  try { ep = await api('/api/episodes/' + n); } catch (e) { status(e.message, true); return; }
  if (S.n !== n) return;  // another episode was opened meanwhile
  S.ep = ep;
  S.episodes[n] = Object.assign(S.episodes[n], {label: S.ep.label});
  S.mark = S.ep.label ? S.ep.label.failed_at_step : null;
  $('title').textContent = 'Episode #' + n + ' \u00b7 ' + S.ep.key + ' \u00b7 ' + S.ep.bag +
    ' \u00b7 ' + (S.ep.task || 'no task') + (S.ep.robot_outcome ? ' \u00b7 robot: ' +
    S.ep.robot_outcome : '') + (S.ep.complete ? '' : ' \u00b7 incomplete in the bag');
  $('instr').textContent = '\u201c' + (S.ep.instruction || '') + '\u201d';
  $('slider').max = Math.max(0, S.ep.rows.length - 1); location.hash = String(n);
  status(S.ep.label ? 'labelled ' + S.ep.label.outcome + ' at ' + S.ep.label.labelled_at
    : 'not labelled yet'); setStep(0);
}
function setStep(t) {
  const rows = S.ep ? S.ep.rows : []; if (!rows.length) { drawDecision(); drawTrace(); return; }
  S.t = Math.max(0, Math.min(rows.length - 1, t)); const r = rows[S.t];
  $('slider').value = S.t;
  $('stepinfo').textContent = 'step ' + r.step + ' (' + (S.t + 1) + '/' + rows.length + ')';
  if (r.has_frame) { $('frame').src = '/frames/' + S.ep.n + '/' + S.t + '.png';
    $('noframe').textContent = ''; }
  else { $('frame').removeAttribute('src'); $('noframe').textContent = 'no frame recorded'; }
  drawDecision(); drawTrace();
}
function drawDecision() {
  const r = S.ep && S.ep.rows[S.t];
  if (!r) { $('decision').innerHTML = '<tr><td>no executed step</td></tr>'; return; }
  const items = [['step', r.step], ['reason', r.reason + (r.intervened ? ' (person)' : '')],
    ['chosen index', r.index], ['Q (executed)', r.q_selected], ['margin', r.q_margin],
    ['candidates K', r.candidates], ['Q min / mean / max', fmt(r.q_min) + ' / ' +
    fmt(r.q_mean) + ' / ' + fmt(r.q_max)], ['action', r.action.map(fmt).join(', ')],
    ['marked step', S.mark === null ? 'none' : S.mark]];
  $('decision').innerHTML = items.map(([k, v]) => '<tr><th>' + k + '</th><td class="num">' +
    esc(fmt(v)) + '</td></tr>').join('');
}
function drawTrace() {
  const svg = $('trace'), W = 900, H = 200, P = 24, rows = S.ep ? S.ep.rows : [];
  const q = rows.map(r => r.q_selected).filter(v => v !== null);
  let lo = q.length ? Math.min(...q) : 0, hi = q.length ? Math.max(...q) : 1;
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const x = t => P + (rows.length > 1 ? t / (rows.length - 1) : 0.5) * (W - 2 * P);
  const y = v => H - P - (v - lo) / (hi - lo) * (H - 2 * P);
  const bw = Math.max(2, (W - 2 * P) / Math.max(1, rows.length));
  let h = '';
  rows.forEach(r => { if (r.intervened) h += '<rect class="int" x="' + (x(r.t) - bw / 2) +
    '" y="' + P + '" width="' + bw + '" height="' + (H - 2 * P) + '" fill="#e67e22" ' +
    'opacity="0.35"/>'; });
  const m = rows.find(r => r.step === S.mark);
  if (m) h += '<rect id="markbar" x="' + (x(m.t) - bw / 2) + '" y="' + (P - 6) + '" width="' +
    bw + '" height="' + (H - 2 * P + 12) + '" fill="#c0392b" opacity="0.6"/>';
  let d = '', pen = false;  // no Q (e.g. a person's action): a gap in the line
  rows.forEach(r => { if (r.q_selected === null) { pen = false; return; }
    d += (pen ? 'L' : 'M') + x(r.t).toFixed(1) + ' ' + y(r.q_selected).toFixed(1); pen = true; });
  h += '<path d="' + d + '" fill="none" stroke="#3b6cb7" stroke-width="2"/>';
  if (rows.length) h += '<line x1="' + x(S.t) + '" x2="' + x(S.t) + '" y1="' + (P - 8) +
    '" y2="' + (H - P + 8) + '" stroke="#222" stroke-dasharray="4 3"/>';
  h += '<text x="2" y="' + (P - 8) + '" font-size="11" fill="#555">Q ' + fmt(hi) + '</text>' +
    '<text x="2" y="' + (H - 4) + '" font-size="11" fill="#555">Q ' + fmt(lo) + '</text>';
  svg.innerHTML = h;
}
function status(text, bad) { $('status').innerHTML = bad ? '<span class="err">' + esc(text) +
  '</span>' : esc(text); }
function play() { if (S.timer || !S.ep || !S.ep.rows.length) return;
  $('btn-play').innerHTML = '&#10074;&#10074;';
  S.timer = setInterval(() => { if (S.t >= S.ep.rows.length - 1) pause(); else setStep(S.t + 1);
  }, 200); }
function pause() { if (S.timer) clearInterval(S.timer); S.timer = null;
  $('btn-play').innerHTML = '&#9654;'; }
function nextUnlabelled(from) {
  for (let i = 1; i <= S.episodes.length; i++) {
    const k = (from + i) % S.episodes.length; if (!S.episodes[k].label) return k; }
  return -1;
}
async function label(outcome) {
  if (!S.ep || S.busy || S.ep.n !== S.n) return; S.busy = true;
  const ep = S.ep, body = {key: ep.key, outcome: outcome,
    failed_at_step: outcome === 'failure' ? S.mark : null};
  try {
    const res = await api('/api/label', body);
    S.episodes[ep.n].label = res.label; ep.label = res.label;
    const note = 'saved ' + outcome + ' for #' + ep.n + ' in ' + res.sidecar;
    const k = nextUnlabelled(ep.n);
    if (k >= 0) { await openEpisode(k); status(note + ' \u00b7 #' + k + ' ' +
      $('status').textContent); }
    else { drawList(); status(note + ' \u00b7 all episodes labelled'); }
  } catch (e) { status(e.message, true); } finally { S.busy = false; }
}
async function toggleMark() {
  const ep = S.ep, r = ep && ep.n === S.n && ep.rows[S.t]; if (!r) return;
  S.mark = S.mark === r.step ? null : r.step; drawDecision(); drawTrace();
  if (ep.label && ep.label.outcome === 'failure') {  // keep a failure label in step
    try { const res = await api('/api/label', {key: ep.key, outcome: 'failure',
      failed_at_step: S.mark}); S.episodes[ep.n].label = res.label; ep.label = res.label;
      drawList(); status('saved the marked step ' + fmt(S.mark)); }
    catch (e) { status(e.message, true); }
  } else status(S.mark === null ? 'unmarked' : 'marked step ' + S.mark +
    ' (saved with Failure)');
}
document.addEventListener('keydown', ev => {
  if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
  const acts = {s: () => label('success'), f: () => label('failure'), k: () => label('skip'),
    m: toggleMark, ArrowLeft: () => setStep(S.t - 1), ArrowRight: () => setStep(S.t + 1),
    ArrowUp: () => openEpisode(S.n - 1), ArrowDown: () => openEpisode(S.n + 1),
    p: () => openEpisode(S.n - 1), n: () => openEpisode(S.n + 1),
    ' ': () => S.timer ? pause() : play()};
  const act = acts[ev.key]; if (!act) return; ev.preventDefault();
  if (document.activeElement && document.activeElement.blur) document.activeElement.blur();
  act();
});
$('slider').addEventListener('input', ev => setStep(Number(ev.target.value)));
$('frame').addEventListener('error', () => { $('noframe').textContent = 'frame not in the bag'; });
$('trace').addEventListener('click', ev => { if (!S.ep || !S.ep.rows.length) return;
  const b = $('trace').getBoundingClientRect(), u = (ev.clientX - b.left) / b.width * 900;
  setStep(Math.round((u - 24) / (900 - 48) * (S.ep.rows.length - 1))); });
$('btn-play').addEventListener('click', () => S.timer ? pause() : play());
$('btn-success').addEventListener('click', () => label('success'));
$('btn-failure').addEventListener('click', () => label('failure'));
$('btn-skip').addEventListener('click', () => label('skip'));
$('btn-mark').addEventListener('click', toggleMark);
$('list').addEventListener('click', ev => { const el = ev.target.closest('.ep');
  if (el) openEpisode(Number(el.dataset.n)); });
(async () => {
  try { const j = await api('/api/episodes'); S.episodes = j.episodes;
    if (j.losses.length) console.warn('not recovered:', j.losses);
    await openEpisode(j.resume); window.vgpsReady = true; }
  catch (e) { $('title').textContent = 'cannot load the episodes: ' + e.message; }
})();
"""

PAGE = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<title>vgps label</title><style>" + _CSS + "</style></head><body>" + _BODY
        + "<script>" + _JS + "</script></body></html>\n")
