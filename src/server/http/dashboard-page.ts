/**
 * The live dashboard: one static page with no build step and no framework. It polls
 * `dashboard/data` (relative, so it works wherever dsd is mounted) every second and draws what
 * speculation is doing. When dsd has API keys the data needs one: the page asks for it and keeps
 * it in sessionStorage, sending it as a bearer token like any client.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dsd dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#1b1f24;background:#f6f8fa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:18px 0 6px}.sub{color:#57606a;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:16px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:10px 14px;min-width:140px}
.card b{display:block;font-size:22px}.card span{color:#57606a;font-size:12px}
table{border-collapse:collapse;background:#fff;border:1px solid #d0d7de;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:middle}
.bars{display:flex;gap:3px;align-items:flex-end;height:36px}
.bar{width:14px;background:#2da44e;border-radius:2px 2px 0 0}.bar.none{background:#d0d7de;height:2px}
.state-closed{color:#1a7f37}.state-open{color:#cf222e}.state-half-open{color:#9a6700}
#key{display:none;margin-bottom:12px}#err{color:#cf222e}
</style></head><body>
<h1>dsd — distributed speculative decoding</h1>
<div class="sub">target <span id="target">…</span> · updated <span id="at">never</span> <span id="err"></span></div>
<form id="key"><input id="keyInput" type="password" placeholder="API key"> <button>Use key</button></form>
<div class="cards">
 <div class="card"><b id="speedup">—</b><span>measured speed-up vs target alone</span></div>
 <div class="card"><b id="acceptance">—</b><span>acceptance rate</span></div>
 <div class="card"><b id="targetOnly">—</b><span>target-only share of tokens</span></div>
 <div class="card"><b id="requests">0</b><span>requests (speculative / passthrough)</span></div>
 <div class="card"><b id="fallbacks">0</b><span>fallbacks</span></div>
</div>
<table><thead><tr><th>draft</th><th>breaker</th><th>vocabulary</th><th>acceptance by position 1–8</th>
<th>proposals</th><th>last k / depth</th><th>best k</th><th>predicted speed-up</th><th>target ms/token</th></tr>
</thead><tbody id="pairs"><tr><td colspan="9">no drafts</td></tr></tbody></table>
<h2>targets</h2>
<table><thead><tr><th>target</th><th>kind</th><th>requests</th><th>bytes sent / received</th><th>link RTT ms</th>
</tr></thead><tbody id="targets"></tbody></table>
<script>
const $ = (id) => document.getElementById(id);
const pct = (v) => (v === null || Number.isNaN(v) ? '—' : (v * 100).toFixed(1) + ' %');
const ENTITIES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' };
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ENTITIES[c]);
$('key').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem('dsdKey', $('keyInput').value);
  $('key').style.display = 'none';
  tick();
});
function bar(r) {
  if (r === null) return '<div class="bar none" title="no data"></div>';
  return '<div class="bar" title="' + pct(r) + '" style="height:' + Math.max(2, r * 36) + 'px"></div>';
}
function bars(rates) {
  return '<div class="bars">' + rates.map(bar).join('') + '</div>';
}
function render(d) {
  $('target').textContent = d.target.urls.join(', ') || 'demo';
  $('at').textContent = new Date(d.at).toLocaleTimeString();
  $('speedup').textContent = d.measuredSpeedup === null ? '—' : d.measuredSpeedup.toFixed(2) + '×';
  $('acceptance').textContent = d.tokens.drafted ? pct(d.tokens.accepted / d.tokens.drafted) : '—';
  const generated = d.tokens.accepted + d.tokens.rounds + d.tokens.targetOnly;
  $('targetOnly').textContent = generated ? pct(d.tokens.targetOnly / generated) : '—';
  $('requests').textContent = d.requests.speculative + ' / ' + d.requests.passthrough;
  $('fallbacks').textContent = Object.values(d.fallbacks).reduce((a, b) => a + b, 0);
  const last = (r) => r === null ? '—' : r.k + ' / ' + r.depth;
  $('targets').innerHTML = d.targets.map((t) => '<tr><td>' + esc(t.url) + '</td><td>' + esc(t.kind) + '</td><td>' +
    t.requests + '</td><td>' + t.bytesSent + ' / ' + t.bytesReceived + '</td><td>' + (t.linkRttMs ?? '—') +
    '</td></tr>').join('');
  $('pairs').innerHTML = d.pairs.length === 0 ? '<tr><td colspan="9">no drafts</td></tr>' : d.pairs.map((p) =>
    '<tr class="pair"><td>' + esc(p.draft) + '</td><td class="state-' + esc(p.breaker) + '">' + esc(p.breaker) +
    '</td><td>' + esc(p.vocabulary) + '</td><td>' + bars(p.acceptanceByPosition) + '</td><td class="proposals">' +
    p.proposals + '</td><td title="' + esc(p.lastRound?.reason ?? '') + '">' + last(p.lastRound) + '</td><td>' +
    (p.bestK ?? '—') + '</td><td>' +
    (p.predictedSpeedup === null ? '—' : p.predictedSpeedup.toFixed(2) + '×') + '</td><td>' +
    (p.targetMsPerToken ?? '—') + '</td></tr>').join('');
}
async function tick() {
  const key = sessionStorage.getItem('dsdKey');
  try {
    const res = await fetch('dashboard/data', { headers: key ? { authorization: 'Bearer ' + key } : {} });
    if (res.status === 401) { $('key').style.display = 'block'; $('err').textContent = 'needs an API key'; return; }
    $('err').textContent = '';
    render(await res.json());
  } catch (e) { $('err').textContent = 'dsd unreachable'; }
}
tick();
setInterval(tick, 1000);
</script></body></html>
`;
