"""The read-only status page: one self-contained HTML document (inline CSS, JS and SVG,
nothing fetched from the internet) that polls ``/api/status`` every few seconds."""

PAGE_HTML = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>cloudvamp status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.2em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .2em} h2{font-size:1.1em;margin:1.2em 0 .4em}
table{border-collapse:collapse;background:#fff} td,th{white-space:nowrap;padding:3px 8px;border-bottom:1px solid #ddd;text-align:right}
th{background:#eee} td.l,th.l{text-align:left}
.badge{display:inline-block;padding:1px 8px;border-radius:8px;color:#fff;font-weight:600}
.ok{background:#2e7d32}.idle{background:#757575}.bad{background:#c62828}
.muted{color:#777} svg{background:#fff;border:1px solid #ddd}
</style></head><body>
<h1>cloudvamp <span id="role" class="badge idle">…</span> <span id="oned" class="badge idle">oned ?</span></h1>
<div class="muted">last cycle <span id="at">never</span> · <span id="cycles">0</span> cycles ·
cycle time <span id="cycle-time">-</span> s of a <span id="period">-</span> s period ·
migrations in flight <span id="in-flight">0</span> · <span id="error"></span></div>
<h2>Reclaimed memory (whole cloud): <span id="reclaimed-now">-</span> GiB</h2>
<svg id="reclaimed-graph" width="720" height="160" role="img" aria-label="reclaimed memory over time"></svg>
<h2>Hosts</h2>
<table id="hosts"><thead><tr><th>host</th><th class="l">name</th><th>physical GiB</th>
<th>allocated GiB</th><th>reclaimed GiB</th><th>lent GiB</th><th>needs room GiB</th>
<th class="l">allocated · reclaimed | physical</th></tr></thead><tbody></tbody></table>
<h2>VMs</h2>
<table id="vms"><thead><tr><th>vm</th><th class="l">name</th><th>host</th><th class="l">state</th>
<th>nominal MiB</th><th>current MiB</th><th>guest used MiB</th><th>target MiB</th>
<th class="l">managed</th><th class="l">report</th><th class="l">reason</th><th class="l">last action</th>
</tr></thead><tbody></tbody></table>
<h2>Recent actions</h2>
<table id="actions"><thead><tr><th class="l">time (UTC)</th><th>vm</th><th>host</th>
<th class="l">action</th><th class="l">result</th><th class="l">reason</th><th class="l">detail</th>
</tr></thead><tbody></tbody></table>
<script>
"use strict";
const GIB = 1024 * 1024 * 1024, MIB = 1024 * 1024;
const gib = b => b == null ? "-" : (b / GIB).toFixed(1);
const mib = b => b == null ? "-" : Math.round(b / MIB).toString();
const utc = s => s == null ? "never" : new Date(s * 1000).toISOString().slice(11, 19);
function cell(row, text, left) {
  const td = document.createElement("td");
  td.textContent = text; if (left) td.className = "l"; row.appendChild(td); return td;
}
function fill(id, rows, make) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren(...rows.map(r => { const tr = document.createElement("tr"); make(tr, r); return tr; }));
}
const NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  return e;
}
function bar(h) {
  // allocated (blue) then reclaimed (green) on one scale; the red tick is physical memory
  const w = 200, s = svg("svg", {width: w, height: 14});
  const top = Math.max(h.physical_bytes, h.allocated_bytes + h.reclaimed_bytes, 1);
  const scale = v => Math.max(0, w * v / top);
  s.appendChild(svg("rect", {x: 0, y: 0, width: scale(h.allocated_bytes), height: 14, fill: "#1565c0"}));
  s.appendChild(svg("rect", {x: scale(h.allocated_bytes), y: 0, width: scale(h.reclaimed_bytes), height: 14, fill: "#81c784"}));
  s.appendChild(svg("rect", {x: Math.min(scale(h.physical_bytes), w - 2), y: 0, width: 2, height: 14, fill: "#c62828"}));
  return s;
}
function graph(points) {
  const g = document.getElementById("reclaimed-graph"), W = 720, H = 160, P = 30;
  g.replaceChildren();
  if (!points.length) return;
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
  const top = Math.max(...points.map(p => p[1]), GIB);
  const x = t => P + (W - 2 * P) * (t - t0) / (t1 - t0), y = b => H - P - (H - 2 * P) * b / top;
  g.appendChild(svg("line", {x1: P, y1: H - P, x2: W - P, y2: H - P, stroke: "#999"}));
  g.appendChild(svg("line", {x1: P, y1: P, x2: P, y2: H - P, stroke: "#999"}));
  const label = (tx, ty, text) => { const t = svg("text", {x: tx, y: ty, "font-size": 11, fill: "#555"}); t.textContent = text; g.appendChild(t); };
  label(2, P, gib(top) + " GiB"); label(2, H - P + 4, "0");
  label(P, H - 8, utc(t0)); label(W - P - 50, H - 8, utc(t1));
  const line = svg("polyline", {fill: "none", stroke: "#2e7d32", "stroke-width": 2,
    points: points.map(p => x(p[0]).toFixed(1) + "," + y(p[1]).toFixed(1)).join(" ")});
  line.id = "reclaimed-line"; g.appendChild(line);
  for (const p of points.slice(-1)) g.appendChild(svg("circle", {cx: x(p[0]), cy: y(p[1]), r: 3, fill: "#2e7d32"}));
}
function render(d) {
  const role = document.getElementById("role");
  role.textContent = d.role === "-" ? (d.acting ? "acting" : "idle") : d.role + (d.acting ? " · acting" : " · idle");
  role.className = "badge " + (d.acting ? "ok" : "idle");
  const oned = document.getElementById("oned");
  oned.textContent = d.oned_up ? "oned up" : "oned down"; oned.className = "badge " + (d.oned_up ? "ok" : "bad");
  document.getElementById("at").textContent = utc(d.at_s);
  document.getElementById("cycles").textContent = (d.cycles.ok || 0) + (d.cycles.failed || 0);
  document.getElementById("cycle-time").textContent = d.timings_s.total_s == null ? "-" : d.timings_s.total_s.toFixed(2);
  document.getElementById("period").textContent = d.period_s;
  document.getElementById("in-flight").textContent = d.migrations_in_flight;
  document.getElementById("error").textContent = d.last_error || "";
  const last = d.reclaimed_history.length ? d.reclaimed_history[d.reclaimed_history.length - 1][1] : null;
  document.getElementById("reclaimed-now").textContent = gib(last);
  graph(d.reclaimed_history);
  fill("hosts", d.hosts, (tr, h) => {
    tr.dataset.host = h.host;
    cell(tr, h.host); cell(tr, h.name, true); cell(tr, gib(h.physical_bytes)); cell(tr, gib(h.allocated_bytes));
    cell(tr, gib(h.reclaimed_bytes)); cell(tr, gib(h.lent_bytes)); cell(tr, gib(h.needs_room_bytes));
    cell(tr, "", true).appendChild(bar(h));
  });
  fill("vms", d.vms, (tr, v) => {
    tr.dataset.vm = v.vm;
    cell(tr, v.vm); cell(tr, v.name, true); cell(tr, v.host == null ? "-" : v.host); cell(tr, v.state, true);
    cell(tr, mib(v.nominal_bytes)); cell(tr, mib(v.current_bytes)); cell(tr, mib(v.guest_used_bytes));
    cell(tr, mib(v.target_bytes)); cell(tr, v.managed ? "yes" : "no", true); cell(tr, v.report, true);
    cell(tr, v.reason, true).style.whiteSpace = "normal"; cell(tr, v.last_action || "-", true);
  });
  fill("actions", d.recent_actions, (tr, a) => {
    cell(tr, utc(a.at_s), true); cell(tr, a.vm); cell(tr, a.host); cell(tr, a.action, true);
    cell(tr, a.result, true); cell(tr, a.reason, true); cell(tr, a.detail, true);
  });
  document.body.dataset.at = d.at_s == null ? "" : String(d.at_s);
  document.body.dataset.cycles = String((d.cycles.ok || 0) + (d.cycles.failed || 0));
}
async function refresh() {
  try {
    const r = await fetch("api/status", {cache: "no-store"});
    render(await r.json());
  } catch (e) {
    document.getElementById("error").textContent = "cvem unreachable: " + e;
  }
}
refresh(); setInterval(refresh, 2000);
</script></body></html>
"""
