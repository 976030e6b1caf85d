// The dashboard: one page, no framework. It reads the status, the last hour of site power and
// the recent audit entries once, then follows the server-sent event stream (it never polls).
"use strict";

const $ = (id) => document.getElementById(id);
const watts = (w) => (w === null || w === undefined ? "–" : `${Math.round(w).toLocaleString()} W`);
const tokenBox = $("token");
tokenBox.value = localStorage.getItem("gateway-token") || "";
tokenBox.addEventListener("change", () => localStorage.setItem("gateway-token", tokenBox.value));

// --- the chart (uPlot): site power against the export limit and the backfeed allowance -------
const HOUR = 3600;
const data = [[], [], [], []];
const chart = new uPlot(
  {
    width: Math.max(600, $("chart").clientWidth),
    height: 240,
    series: [
      {},
      { label: "site net power (import +)", stroke: "#2e90fa", width: 2 },
      { label: "export limit (as -W)", stroke: "#b42318", dash: [6, 4] },
      { label: "backfeed allowance (as -W)", stroke: "#f79009", dash: [2, 4] },
    ],
    axes: [{}, { size: 70, values: (u, ticks) => ticks.map((v) => `${(v / 1000).toFixed(1)} kW`) }],
  },
  data,
  $("chart"),
);

function addPoint(p) {
  data[0].push(p.t);
  data[1].push(p.grid_w);
  data[2].push(p.export_limit_w === null ? null : -p.export_limit_w);
  data[3].push(p.allowance_w === null ? null : -p.allowance_w);
  while (data[0].length && data[0][0] < p.t - HOUR) data.forEach((s) => s.shift());
}

// --- the power-flow picture ---------------------------------------------------------------
function line(id, w, towardHouse) {
  const el = $(id);
  el.classList.toggle("flowing", !!w && Math.abs(w) > 20);
  el.classList.toggle("reverse", !!w && (towardHouse ? w < 0 : w > 0));
}

let lastPhase = null;
function showStatus(s) {
  $("site").textContent = s.site;
  const phase = $("phase");
  phase.textContent = s.phase ? s.phase.replace(/_/g, " ") : "starting";
  phase.className = `badge ${s.phase || ""}`;
  $("relay-text").textContent = `relay ${s.relay || "?"}`;
  $("relay").setAttribute("class", s.relay || "");
  const f = s.flows;
  const pv = Object.values(f.der_w || {}).reduce((a, b) => a + (b || 0), 0);
  $("w-grid").textContent = watts(f.grid_w);
  $("w-house").textContent = watts(f.house_w);
  $("w-ev").textContent = watts(f.ev_w);
  $("w-pv").textContent = watts(pv);
  $("soc").textContent = s.charger && s.charger.soc_pct !== null ? `${Math.round(s.charger.soc_pct)} %` : "";
  line("l-grid", f.grid_w, true);
  line("l-house", f.house_w === null ? 0 : -f.house_w, true);
  line("l-ev", f.ev_w, false);
  line("l-pv", pv, false);
  const a = s.allowance;
  const limit = s.export_limit ? `export limit ${watts(s.export_limit.w)} (${s.export_limit.source})` : "no export limit";
  $("allowance").textContent = a ? `backfeed allowance ${watts(a.discharge_w)}, bound by ${a.discharge_bound_by}; ${limit}` : limit;
  if (s.phase !== lastPhase) {
    if (lastPhase !== null) addRow(s.at, `phase: ${s.phase}`, "");
    lastPhase = s.phase;
  }
}

// --- the timeline -------------------------------------------------------------------------
function addRow(at, what, why, cls) {
  const li = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date(at).toLocaleTimeString();
  li.append(time, document.createTextNode(why ? `${what}: ${why}` : what));
  if (cls) li.className = cls;
  $("timeline").prepend(li);
  while ($("timeline").children.length > 200) $("timeline").lastChild.remove();
}

function addAudit(e) {
  const outcome = (e.outcome || "").split(":")[0];
  addRow(e.at, `${e.device} ${e.point} = ${JSON.stringify(e.value)} (${e.outcome})`, e.reason, outcome);
}

// --- the homeowner's writes ---------------------------------------------------------------
async function ask(path) {
  const r = await fetch(path, {
    method: "POST",
    headers: { Authorization: `Bearer ${tokenBox.value}`, "Content-Type": "application/json" },
    body: JSON.stringify({ by: "dashboard" }),
  });
  const doc = await r.json();
  $("answer").textContent = doc.accepted ? doc.reason : `refused: ${(doc.reasons || []).join("; ")}`;
}
$("island").addEventListener("click", () => ask("/api/island"));
$("reconnect").addEventListener("click", () => ask("/api/reconnect"));
$("fault").addEventListener("click", () => ask("/api/fault-reset"));

// --- start: what is there now, then the stream --------------------------------------------
async function start() {
  const [history, audit] = await Promise.all([
    fetch("/api/history").then((r) => r.json()),
    fetch("/api/audit?tail=50").then((r) => r.json()),
  ]);
  history.forEach(addPoint);
  chart.setData(data);
  audit.entries.forEach(addAudit);
  const stream = new EventSource("/api/stream");
  stream.onopen = () => $("live").classList.add("on");
  stream.onerror = () => $("live").classList.remove("on");
  stream.addEventListener("status", (ev) => showStatus(JSON.parse(ev.data)));
  stream.addEventListener("audit", (ev) => addAudit(JSON.parse(ev.data)));
  stream.addEventListener("point", (ev) => {
    addPoint(JSON.parse(ev.data));
    chart.setData(data);
  });
}
start();
