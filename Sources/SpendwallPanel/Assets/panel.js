// Spendwall panel: plain modern JavaScript, no build step. Every request goes to /panel/api/*
// with the session cookie; requests that change anything carry the CSRF token.
"use strict";

const state = { csrf: null, page: null, feed: [], kills: { on: [] }, pending: [], source: null, spend: { since: "7d", by: "app" } };
const main = document.getElementById("main");

// ---------- helpers ----------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, v);
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, options = {}) {
  const headers = { accept: "application/json" };
  if (options.body !== undefined) headers["content-type"] = "application/json";
  if (options.method && options.method !== "GET") headers["x-csrf-token"] = state.csrf || "";
  let response;
  try {
    response = await fetch("/panel/api" + path, {
      method: options.method || "GET", headers, credentials: "same-origin",
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch (e) {
    throw new APIError(0, "daemon_unreachable", "The daemon is not answering. Start it with `spendwall start` (or `systemctl --user start spendwall`), then reload this page.");
  }
  let body = {};
  try { body = await response.json(); } catch (e) { /* not JSON */ }
  if (!response.ok) {
    const err = body.error || {};
    throw new APIError(response.status, err.code || "http_" + response.status, err.message || "HTTP " + response.status);
  }
  return body;
}

function dollars(nanos) {
  const d = (nanos || 0) / 1e9;
  if (d === 0) return "$0.00";
  if (Math.abs(d) < 0.01) return "$" + d.toFixed(6).replace(/0+$/, "").replace(/\.$/, "");
  return "$" + d.toLocaleString(undefined, { minimumFractionDigits: 2, maximumFractionDigits: 2 });
}

function count(n) { return (n || 0).toLocaleString(); }
function clock(ms) { return new Date(ms).toLocaleTimeString(); }
function when(ms) {
  const d = new Date(ms);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
}

function seconds(since) { return Math.max(1, Math.floor((Date.now() - since) / 1000)) + "s"; }
function startOfDay(d = new Date()) { return new Date(d.getFullYear(), d.getMonth(), d.getDate()); }
function startOfWeek() { const d = startOfDay(); const back = (d.getDay() + 6) % 7; d.setDate(d.getDate() - back); return d; }
function startOfMonth() { const d = new Date(); return new Date(d.getFullYear(), d.getMonth(), 1); }

function stateBox(kind, title, text) {
  return h("section", { class: "state " + kind }, h("p", {}, h("strong", {}, title)), text ? h("p", {}, ...codeText(text)) : null);
}

// Renders `backticked` parts of a message as code.
function codeText(text) {
  return String(text).split("`").map((part, i) => (i % 2 ? h("code", {}, part) : part));
}

function errorBox(err) {
  if (err.status === 401) return stateBox("error", "Not logged in", "Run `spendwall panel` in a terminal and open the login link it prints.");
  if (err.code === "daemon_unreachable") return stateBox("error", "The daemon is not answering", err.message);
  return stateBox("error", "Something went wrong (" + err.code + ")", err.message + " — reload the page to try again.");
}

function toast(title, body) {
  const box = document.getElementById("toasts");
  const t = h("div", { class: "toast", role: "status" }, h("b", {}, title), body);
  box.append(t);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => t.remove(), 8000);
}

function notify(title, body) {
  if ("Notification" in window && Notification.permission === "granted") {
    try { new Notification(title, { body, silent: true, tag: "spendwall-" + title }); return; } catch (e) { /* fall through */ }
  }
  toast(title, body);
}

function callName(c) {
  return [c.app, c.agent].filter(Boolean).join(" / ") + " · " + c.model;
}

// ---------- live events ----------

function connectEvents() {
  if (state.source) state.source.close();
  const live = document.getElementById("live");
  const source = new EventSource("/panel/api/events");
  state.source = source;
  source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
  source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
  const on = (kind, fn) => source.addEventListener(kind, (e) => { try { fn(JSON.parse(e.data).data); } catch (err) { console.error(err); } });
  on("SpendObserved", (row) => {
    state.feed.unshift(row);
    state.feed.length = Math.min(state.feed.length, 200);
    if (state.page === "now") { prependFeedRow(row); refreshTotalsSoon(); }
  });
  on("ApprovalRequested", (a) => {
    notify("Approval needed", `${callName(a)} — about ${dollars(a.estimated_nanousd)} (cap ${a.cap})`);
    refreshApprovals();
  });
  on("ApprovalResolved", () => refreshApprovals());
  on("CapAlert", (e) => {
    const used = e.cap && e.cap.used !== undefined ? Math.round(e.cap.used * 100) + "%" : "its warning line";
    notify(e.exceeded ? "Cap exceeded" : "Cap warning", `${e.cap ? e.cap.name : "a cap"} is at ${used} (${callName(e.call)})`);
    if (state.page === "caps") render();
  });
  on("CapBlocked", (e) => { if (state.page === "caps") render(); });
  on("KillSwitch", () => { if (state.page === "now") refreshKills(); });
  on("SessionStop", () => { if (state.page === "sessions") render(); });
  on("ReconciliationDrift", (e) => {
    notify("Billing drift", `${e.provider || "a provider"} ${e.period || ""}: the bill and the ledger differ`);
    if (state.page === "reconcile") render();
  });
  on("ConfigReloaded", () => { if (state.page === "caps") render(); });
}

let totalsTimer = null;
function refreshTotalsSoon() {
  clearTimeout(totalsTimer);
  totalsTimer = setTimeout(() => { const el = document.getElementById("totals"); if (el) loadTotals(el); }, 400);
}

async function refreshApprovals() {
  try {
    const body = await api("/approvals");
    state.pending = body.approvals;
  } catch (e) { return; }
  const badge = document.getElementById("approval-count");
  badge.textContent = state.pending.length;
  badge.hidden = state.pending.length === 0;
  if (state.page === "approvals") render();
}

// ---------- Now ----------

async function loadTotals(el) {
  // One read for all three: spend per local day since the earliest of the three starts.
  const ranges = [["Today", startOfDay()], ["This week", startOfWeek()], ["This month", startOfMonth()]];
  const earliest = new Date(Math.min(...ranges.map(([, d]) => d.getTime())));
  const days = await api("/spend?by=day&since=" + seconds(earliest));
  const key = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const sums = ranges.map(([, since]) => {
    const from = key(since);
    return days.rows.filter((r) => r.key >= from).reduce((a, r) => ({ cost: a.cost + r.cost_nanousd, calls: a.calls + r.calls }), { cost: 0, calls: 0 });
  });
  el.replaceChildren(...ranges.map(([label], i) => h("div", { class: "card", "data-total": label },
    h("div", { class: "label" }, label), h("div", { class: "value" }, dollars(sums[i].cost)),
    h("div", { class: "sub" }, count(sums[i].calls) + " calls"))));
}

function feedRow(row, fresh) {
  const tokens = (row.input_tokens || 0) + (row.cache_read_tokens || 0) + (row.cache_write_tokens || 0);
  return h("tr", { class: fresh ? "fresh" : "", "data-request-id": row.request_id },
    h("td", {}, clock(row.time_ms)),
    h("td", {}, row.app),
    h("td", {}, row.agent || "—"),
    h("td", { class: "hide-narrow" }, row.model),
    h("td", { class: "num hide-narrow" }, count(tokens) + " / " + count(row.output_tokens)),
    h("td", { class: "num" }, dollars(row.cost_nanousd) + (row.estimated ? "*" : "")),
    h("td", { class: "outcome-" + row.outcome }, row.outcome),
    h("td", {},
      h("button", { class: "small", title: "Stop every call of this app", "data-kill-app": row.app, onclick: () => setKill({ app: row.app }, true) }, "kill app"),
      " ",
      row.agent ? h("button", { class: "small", title: "Stop every call of this agent", "data-kill-agent": row.agent, onclick: () => setKill({ agent: row.agent }, true) }, "kill agent") : null));
}

function prependFeedRow(row) {
  const body = document.getElementById("feed-body");
  if (!body) return;
  document.getElementById("feed-empty")?.remove();
  document.getElementById("feed-table").hidden = false;
  body.prepend(feedRow(row, true));
  while (body.children.length > 200) body.lastChild.remove();
}

async function setKill(scope, on) {
  try {
    await api("/kill", { method: "POST", body: { ...scope, on } });
    const name = scope.agent ? `agent "${scope.agent}"` : scope.app ? `app "${scope.app}"` : scope.session ? `session "${scope.session}"` : "global";
    toast(on ? "Kill switch on" : "Kill switch off", on ? `Every ${name} call is refused until you turn it off.` : `${name} calls may go ahead again.`);
  } catch (e) {
    toast("Could not flip the switch", e.message);
  }
  refreshKills();
}

async function refreshKills() {
  const el = document.getElementById("killbar");
  if (!el) return;
  try { state.kills = await api("/kill"); } catch (e) { el.replaceChildren(errorBox(e)); return; }
  const global = state.kills.on.some((k) => k.kind === "global");
  const others = state.kills.on.filter((k) => k.kind !== "global");
  el.className = "killbar" + (state.kills.on.length ? " on" : "");
  el.replaceChildren(
    global
      ? h("button", { id: "kill-global", class: "primary", "data-on": "true", onclick: () => setKill({}, false) }, "Resume all spending")
      : h("button", { id: "kill-global", class: "danger", "data-on": "false", onclick: () => setKill({}, true) }, "Stop all spending"),
    h("span", {}, global ? "Global kill switch is ON: every call is refused." : others.length ? "Some switches are on:" : "No kill switch is on. Stop one app or agent from its row below."),
    h("span", { class: "chips" }, others.map((k) => h("span", { class: "chip", "data-kill-on": k.kind + ":" + k.value },
      `${k.kind} ${k.value} `, h("button", { class: "small quiet", title: "Turn this switch off", onclick: () => setKill({ [k.kind]: k.value }, false) }, "✕")))));
}

async function pageNow() {
  const totals = h("div", { class: "cards", id: "totals" }, h("div", { class: "card" }, "Loading…"));
  const killbar = h("div", { class: "killbar", id: "killbar" }, "Loading kill switches…");
  const body = h("tbody", { id: "feed-body" });
  const table = h("div", { class: "scroll" }, h("table", { id: "feed-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "time"), h("th", {}, "app"), h("th", {}, "agent"), h("th", { class: "hide-narrow" }, "model"),
      h("th", { class: "num hide-narrow" }, "tokens in / out"), h("th", { class: "num" }, "cost"), h("th", {}, "outcome"), h("th", {}, "stop"))), body));
  main.replaceChildren(h("h1", {}, "Now"), totals, killbar, h("h2", {}, "Live calls"), table);
  const [rows] = await Promise.all([api("/ledger?limit=50"), loadTotals(totals), refreshKills()]);
  state.feed = rows.rows;
  if (rows.rows.length === 0) {
    table.querySelector("table").hidden = true;
    table.append(stateBox("empty", "No calls yet", "Calls appear here the moment they are made. Point an agent at the proxy (`OPENAI_BASE_URL=http://" + location.host + "/v1`) or wrap its client with the Python or TypeScript SDK."));
    table.lastChild.id = "feed-empty";
  }
  body.replaceChildren(...rows.rows.map((r) => feedRow(r, false)));
}

// ---------- Spend ----------

const PALETTE = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#9ca3af"];

function buckets(since, bucket) {
  const out = [];
  const pad = (n) => String(n).padStart(2, "0");
  const now = new Date();
  if (bucket === "hour") {
    const d = new Date(now.getFullYear(), now.getMonth(), now.getDate(), now.getHours());
    for (let i = 23; i >= 0; i--) {
      const t = new Date(d.getTime() - i * 3600e3);
      out.push(`${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:00`);
    }
  } else {
    const days = since === "30d" ? 30 : 7;
    for (let i = days - 1; i >= 0; i--) {
      const t = startOfDay(); t.setDate(t.getDate() - i);
      out.push(`${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}`);
    }
  }
  return out;
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function stackedChart(series) {
  const labels = buckets(series.since, series.bucket);
  const totals = new Map();
  for (const p of series.points) totals.set(p.key, (totals.get(p.key) || 0) + p.cost_nanousd);
  const ranked = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const keys = ranked.slice(0, 8);
  if (ranked.length > 8) keys.push("other");
  const grid = new Map(labels.map((l) => [l, new Map()]));
  for (const p of series.points) {
    const key = keys.includes(p.key) ? p.key : "other";
    const col = grid.get(p.bucket);
    if (col) col.set(key, (col.get(key) || 0) + p.cost_nanousd);
  }
  const max = niceMax(Math.max(0, ...labels.map((l) => [...grid.get(l).values()].reduce((a, b) => a + b, 0))) / 1e9);
  const W = 720, H = 260, L = 56, B = 24, T = 8, R = 8;
  const plotW = W - L - R, plotH = H - T - B, step = plotW / labels.length, barW = Math.max(2, step * 0.72);
  const svg = s("svg", { id: "spend-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "spend per " + series.bucket + " by " + series.by });
  for (let i = 0; i <= 4; i++) {
    const y = T + plotH - (plotH * i) / 4;
    svg.append(s("line", { x1: L, x2: W - R, y1: y, y2: y, stroke: "currentColor", "stroke-opacity": 0.12 }));
    svg.append(s("text", { x: L - 6, y: y + 4, "text-anchor": "end" }, dollars((max * i / 4) * 1e9)));
  }
  const every = Math.ceil(labels.length / 8);
  labels.forEach((label, i) => {
    const x = L + i * step + (step - barW) / 2;
    let y = T + plotH;
    keys.forEach((key, k) => {
      const v = (grid.get(label).get(key) || 0) / 1e9;
      if (v <= 0) return;
      const hgt = Math.max(1, (v / max) * plotH);
      y -= hgt;
      svg.append(s("rect", { class: "bar", x: x.toFixed(1), y: y.toFixed(1), width: barW.toFixed(1), height: hgt.toFixed(1), fill: PALETTE[k % PALETTE.length], "data-key": key, "data-bucket": label },
        s("title", {}, `${label} · ${key}: ${dollars(v * 1e9)}`)));
    });
    if (i % every === 0) {
      const text = series.bucket === "hour" ? label.slice(11) : label.slice(5);
      svg.append(s("text", { x: (L + i * step + step / 2).toFixed(1), y: H - 6, "text-anchor": "middle" }, text));
    }
  });
  const legend = h("div", { class: "legend" }, keys.map((k, i) => {
    const swatch = h("i");
    swatch.style.background = PALETTE[i % PALETTE.length];
    return h("span", {}, swatch, k + " " + dollars(k === "other" ? ranked.slice(8).reduce((a, r) => a + totals.get(r), 0) : totals.get(k)));
  }));
  return { svg, legend, empty: series.points.length === 0 };
}

function topTable(title, answer) {
  const rows = answer.rows.slice(0, 10);
  return h("div", { class: "scroll" }, h("h2", {}, title),
    rows.length === 0 ? stateBox("empty", "Nothing in this range", null) :
      h("table", { "data-top": answer.by }, h("thead", {}, h("tr", {}, h("th", {}, answer.by), h("th", { class: "num" }, "calls"), h("th", { class: "num" }, "cost"), h("th", { class: "num" }, "share"))),
        h("tbody", {}, rows.map((r) => h("tr", {}, h("td", {}, r.key), h("td", { class: "num" }, count(r.calls)), h("td", { class: "num" }, dollars(r.cost_nanousd)), h("td", { class: "num" }, Math.round(r.share * 100) + "%"))))));
}

function segmented(options, current, onpick) {
  return h("span", { class: "seg" }, options.map(([value, label]) =>
    h("button", { class: value === current ? "on" : "", "data-value": value, onclick: () => onpick(value) }, label)));
}

async function pageSpend() {
  const { since, by } = state.spend;
  const pick = (change) => { Object.assign(state.spend, change); render(); };
  main.replaceChildren(h("h1", {}, "Spend"),
    h("div", { class: "controls" },
      segmented([["1d", "1 day"], ["7d", "7 days"], ["30d", "30 days"]], since, (v) => pick({ since: v })),
      h("span", {}, "stacked by "),
      segmented([["app", "app"], ["agent", "agent"], ["model", "model"]], by, (v) => pick({ by: v }))),
    h("div", { class: "chart", id: "chart" }, "Loading…"), h("div", { class: "tops", id: "tops" }));
  const bucket = since === "1d" ? "hour" : "day";
  const [series, ...tops] = await Promise.all([
    api(`/spend/series?by=${by}&since=${since}&bucket=${bucket}`),
    ...["app", "agent", "model", "tag"].map((g) => api(`/spend?by=${g}&since=${since}`)),
  ]);
  const chart = stackedChart(series);
  const box = document.getElementById("chart");
  box.replaceChildren(chart.svg, chart.legend);
  if (chart.empty) box.append(stateBox("empty", "No spend in this range", "Spend shows up here as soon as calls are recorded; try a longer range."));
  document.getElementById("tops").replaceChildren(
    topTable("Top apps", tops[0]), topTable("Top agents", tops[1]), topTable("Top models", tops[2]), topTable("Top tags", tops[3]));
}

// ---------- Caps ----------

const WINDOW_MS = { h: 3600e3, d: 86400e3, m: 60e3, s: 1e3 };
function windowInfo(window) {
  const now = new Date();
  if (window === "day" || window === "week" || window === "month") {
    const start = window === "day" ? startOfDay() : window === "week" ? startOfWeek() : startOfMonth();
    const end = new Date(start);
    if (window === "day") end.setDate(end.getDate() + 1);
    else if (window === "week") end.setDate(end.getDate() + 7);
    else end.setMonth(end.getMonth() + 1);
    return { calendar: true, start, end, elapsed: now - start, length: end - start };
  }
  const m = /^(\d+)([smhd])$/.exec(window);
  return { calendar: false, length: m ? Number(m[1]) * WINDOW_MS[m[2]] : 0 };
}

function capKey(cap, key, info) {
  const limit = key.limit_nanousd;
  const money = limit !== undefined && limit !== null;
  const spent = money ? key.spent_nanousd : key.spent_tokens;
  const reserved = money ? key.reserved_nanousd : key.reserved_tokens;
  const max = money ? limit : key.limit_tokens || 0;
  const bar = h("div", { class: "meter" + (key.used >= 1 ? " over" : key.used >= (key.warn_at || 0.8) ? " warn" : ""), "data-cap": cap.name });
  const sp = h("div", { class: "spent" });
  const rs = h("div", { class: "reserved" });
  const pct = (v) => (max > 0 ? Math.min(100, (v / max) * 100) : 0);
  sp.style.width = pct(spent) + "%";
  rs.style.left = pct(spent) + "%";
  rs.style.width = Math.max(0, Math.min(100 - pct(spent), pct(reserved))) + "%";
  bar.append(sp, rs);
  const fmt = money ? dollars : (v) => count(v) + " tok";
  let reset, projected;
  if (info.calendar) {
    reset = "resets " + info.end.toLocaleString();
    const p = info.elapsed > 60e3 ? (spent * info.length) / info.elapsed : null;
    projected = p === null ? "projected: too early to tell" : "projected " + fmt(Math.round(p)) + " by then" + (p > max ? " — over the limit" : "");
  } else {
    reset = "rolling " + cap.window + ": spend older than that drops off";
    projected = "at this rate " + fmt(spent) + " per " + cap.window;
  }
  const scope = Object.entries(key.scope || cap.scope).map(([k, v]) => (k === "global" ? "global" : `${k} = ${key.key && key.key !== "*" ? key.key : v}`)).join(", ");
  return h("div", {}, bar, h("div", { class: "keyline" },
    h("span", {}, h("strong", {}, fmt(spent)), " spent + " + fmt(reserved) + " reserved of " + fmt(max)),
    h("span", {}, scope), h("span", {}, reset), h("span", {}, projected)));
}

function scopeFlag(scope) {
  const [k, v] = Object.entries(scope)[0] || ["global", "true"];
  return k === "global" ? "global" : `${k}=${v}`;
}

function capForm(existing, done) {
  const flag = existing ? scopeFlag(existing.scope) : "agent=";
  const kind = flag === "global" ? "global" : flag.split("=")[0];
  const value = flag === "global" ? "" : flag.slice(kind.length + 1);
  const f = h("form", { class: "capform card", id: "cap-form" },
    h("label", {}, "name", h("input", { name: "name", required: true, value: existing ? existing.name : "", readonly: existing ? true : null, pattern: "[A-Za-z0-9._-]{1,64}" })),
    h("label", {}, "scope", h("select", { name: "kind" }, ["global", "agent", "app", "session", "model", "tag"].map((k) => h("option", { value: k, selected: k === kind }, k)))),
    h("label", {}, "value (* = each one; tag: key=value)", h("input", { name: "value", value })),
    h("label", {}, "window", h("select", { name: "window" }, ["1h", "1d", "7d", "30d", "day", "week", "month"].map((w) => h("option", { value: w, selected: existing ? existing.window === w : w === "1d" }, w)))),
    h("label", {}, "limit (USD)", h("input", { name: "limit", type: "number", step: "any", min: "0", required: true, value: existing && existing.limit_nanousd ? existing.limit_nanousd / 1e9 : "" })),
    h("label", {}, "action", h("select", { name: "action" }, ["block", "alert", "approve"].map((a) => h("option", { value: a, selected: existing && existing.action === a }, a)))),
    h("label", {}, "warn at (0–1)", h("input", { name: "warn", type: "number", step: "0.05", min: "0.05", max: "1", value: existing ? existing.warn_at : 0.8 })),
    h("span", {}, h("button", { class: "primary", type: "submit" }, existing ? "Save" : "Create"), " ", h("button", { type: "button", onclick: () => done(false) }, "Cancel")),
    h("div", { class: "formerror", id: "cap-form-error" }));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const d = new FormData(f);
    const scope = d.get("kind") === "global" ? "global" : `${d.get("kind")}=${d.get("value")}`;
    try {
      await api("/caps/" + encodeURIComponent(d.get("name")), { method: "PUT", body: { scope, window: d.get("window"), limit_usd: Number(d.get("limit")), action: d.get("action"), warn_at: Number(d.get("warn")) } });
      toast("Cap saved", `"${d.get("name")}" is in caps.toml and enforced now.`);
      done(true);
    } catch (e) {
      document.getElementById("cap-form-error").replaceChildren(...codeText(e.message));
    }
  });
  return f;
}

async function pageCaps() {
  main.replaceChildren(h("h1", {}, "Caps"), stateBox("loading", "Loading caps…"));
  const snap = await api("/snapshot");
  const formSlot = h("div", { id: "form-slot" });
  const closeForm = (changed) => { formSlot.replaceChildren(); if (changed) render(); };
  const list = snap.caps.map((cap) => {
    const info = windowInfo(cap.window);
    return h("div", { class: "card cap", "data-cap-name": cap.name },
      h("header", {}, h("span", { class: "name" }, cap.name), h("span", { class: "meta" }, `${scopeFlag(cap.scope)} · ${cap.window} · ${cap.action} · warn at ${Math.round(cap.warn_at * 100)}%`),
        h("span", { class: "grow" }),
        h("button", { class: "small", onclick: () => formSlot.replaceChildren(capForm(cap, closeForm)) }, "edit"),
        h("button", { class: "small", "data-delete-cap": cap.name, onclick: async () => {
          if (!confirm(`Remove cap "${cap.name}" from caps.toml?`)) return;
          try { await api("/caps/" + encodeURIComponent(cap.name), { method: "DELETE" }); toast("Cap removed", cap.name); render(); } catch (e) { toast("Could not remove the cap", e.message); }
        } }, "delete")),
      cap.keys.map((k) => capKey(cap, k, info)));
  });
  main.replaceChildren(h("h1", {}, "Caps"),
    h("div", { class: "controls" }, h("button", { class: "primary", id: "new-cap", onclick: () => formSlot.replaceChildren(capForm(null, closeForm)) }, "New cap"),
      h("span", { class: "meta" }, `${snap.reservations_in_flight} reservations in flight`)),
    formSlot,
    list.length ? h("div", { id: "cap-list" }, list) : stateBox("empty", "No caps yet", "Nothing limits spend. Create one with “New cap”, or add a [[cap]] to caps.toml (`spendwall caps set NAME --scope agent=A --window 1d --limit-usd 10`)."));
}

// ---------- Approvals ----------

async function decide(id, decision) {
  try {
    await api(`/approvals/${encodeURIComponent(id)}/resolve`, { method: "POST", body: { decision } });
    toast(decision === "approve" ? "Approved" : "Denied", decision === "approve" ? "The call goes ahead." : "The call is refused.");
  } catch (e) {
    toast("Could not decide", e.message);
  }
  refreshApprovals();
}

async function pageApprovals() {
  main.replaceChildren(h("h1", {}, "Approvals"), stateBox("loading", "Loading approvals…"));
  const [pending, all] = await Promise.all([api("/approvals"), api("/approvals?status=all")]);
  state.pending = pending.approvals;
  const badge = document.getElementById("approval-count");
  badge.textContent = state.pending.length;
  badge.hidden = state.pending.length === 0;
  const decided = all.approvals.filter((a) => a.status !== "pending").slice(0, 20);
  main.replaceChildren(h("h1", {}, "Approvals"),
    state.pending.length === 0
      ? stateBox("empty", "Nothing waiting for you", "Calls held by an `action = \"approve\"` cap appear here, with a notification, the moment they are made.")
      : h("div", { id: "pending" }, state.pending.map((a) => h("div", { class: "card approval", "data-approval": a.id },
        h("div", { class: "what" }, h("div", {}, h("strong", {}, a.app), a.agent ? " · agent " + a.agent : "", " · ", a.model),
          h("div", { class: "meta" }, `cap ${a.cap} · asked ${when(a.created_ms)}`), h("div", { class: "meta" }, a.reason)),
        h("div", { class: "cost" }, dollars(a.estimated_nanousd)),
        h("button", { class: "primary", "data-approve": a.id, onclick: () => decide(a.id, "approve") }, "Approve"),
        h("button", { class: "danger", "data-deny": a.id, onclick: () => decide(a.id, "deny") }, "Deny")))),
    h("h2", {}, "Recently decided"),
    decided.length === 0 ? stateBox("empty", "None yet", null) :
      h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "asked"), h("th", {}, "app / agent"), h("th", {}, "model"), h("th", { class: "num" }, "estimate"), h("th", {}, "status"), h("th", { class: "hide-narrow" }, "resolution"))),
        h("tbody", {}, decided.map((a) => h("tr", {}, h("td", {}, when(a.created_ms)), h("td", {}, [a.app, a.agent].filter(Boolean).join(" / ")), h("td", {}, a.model),
          h("td", { class: "num" }, dollars(a.estimated_nanousd)), h("td", {}, a.status), h("td", { class: "hide-narrow" }, a.resolution || "")))))));
}

// ---------- Sessions ----------

// The most of each git snapshot artifact the daemon keeps (docs/socket-api.md, "Sessions").
const ARTIFACT_CAP = { git_diff: "1 MiB", git_status: "256 KiB" };

function sessionTitle(x) { return x.name || x.command.join(" "); }
function sessionStatus(x) { return x.status === "running" ? "running" : (x.stop_reason || "ended"); }
function sessionKilled(id) { return (state.kills.on || []).some((k) => k.kind === "session" && k.value === id); }

function bytesText(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  return (n / (1 << 20)).toFixed(2) + " MiB";
}

function duration(fromMS, toMS) {
  const s = Math.max(0, Math.round((toMS - fromMS) / 1000));
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
}

// Spent against the session's budget: a bar when there is a money budget, the cost alone otherwise.
function budgetMeter(x, cap) {
  const spent = cap ? cap.spent_nanousd : (x.spend ? x.spend.cost_nanousd : 0);
  const reserved = cap ? cap.reserved_nanousd || 0 : 0;
  const budget = x.budget_nanousd;
  if (!budget) {
    return h("div", { class: "budget" }, h("span", {}, dollars(spent)),
      h("span", { class: "meta" }, x.budget_tokens ? ` · budget ${count(x.budget_tokens)} tokens` : " · no budget"));
  }
  const used = spent / budget;
  const bar = h("div", { class: "meter" + (used >= 1 ? " over" : used >= 0.8 ? " warn" : ""), "data-session-meter": x.id });
  const sp = h("div", { class: "spent" });
  const rs = h("div", { class: "reserved" });
  const pct = (v) => Math.min(100, (v / budget) * 100);
  sp.style.width = pct(spent) + "%";
  rs.style.left = pct(spent) + "%";
  rs.style.width = Math.max(0, Math.min(100 - pct(spent), pct(reserved))) + "%";
  bar.append(sp, rs);
  return h("div", { class: "budget" }, h("span", {}, dollars(spent) + " of " + dollars(budget)), bar);
}

async function stopSession(id) {
  try {
    await api("/kill", { method: "POST", body: { session: id, on: true } });
    toast("Stopping the session", `Session ${id}'s calls are refused now; \`spendwall run\` sends the program Ctrl+C, then SIGTERM, then SIGKILL.`);
  } catch (e) {
    toast("Could not stop the session", e.message);
    return;
  }
  render();
  // The session ends when `spendwall run` has stopped its program: look again until it has.
  const deadline = Date.now() + 30000;
  const page = location.hash;
  while (Date.now() < deadline && location.hash === page) {
    await new Promise((r) => setTimeout(r, 500));
    try {
      const body = await api("/sessions/" + encodeURIComponent(id));
      if (body.session.status !== "running") { if (location.hash === page) render(); return; }
    } catch (e) { return; }
  }
}

function stopButton(x) {
  if (x.status !== "running") return null;
  if (sessionKilled(x.id)) return h("span", { class: "meta", "data-stopping": x.id, title: "Its kill switch is on: its calls are refused, and `spendwall run` is stopping its program." }, "stopping…");
  return h("button", { class: "small danger", "data-stop-session": x.id, title: "Kill switch on this session: its calls are refused and its program is stopped", onclick: () => stopSession(x.id) }, "stop");
}

const NO_SESSIONS = "Run an agent under a budget and it shows up here: start one with `spendwall run --budget-usd 5 -- claude` (or `-- codex`). Its calls, cost and how it ended are recorded.";

async function pageSessions() {
  main.replaceChildren(h("h1", {}, "Sessions"), stateBox("loading", "Loading sessions…"));
  const [list, kills] = await Promise.all([api("/sessions?limit=100"), api("/kill")]);
  state.kills = kills;
  if (list.sessions.length === 0) {
    main.replaceChildren(h("h1", {}, "Sessions"), stateBox("empty", "No sessions yet", NO_SESSIONS));
    return;
  }
  const rows = list.sessions.map((x) => h("tr", { "data-session": x.id, class: x.status === "running" ? "running" : "" },
    h("td", { class: "wrap" }, h("a", { href: "#session/" + encodeURIComponent(x.id) }, sessionTitle(x)), h("div", { class: "meta" }, x.id)),
    h("td", {}, x.agent || "—"),
    h("td", { class: "status-" + sessionStatus(x), "data-status": sessionStatus(x) }, sessionStatus(x)),
    h("td", { class: "num" }, count(x.spend ? x.spend.calls : 0)),
    h("td", { class: "budget-cell" }, budgetMeter(x, null)),
    h("td", { class: "hide-narrow" }, when(x.started_ms)),
    h("td", { class: "hide-narrow" }, x.ended_ms ? when(x.ended_ms) + " (" + duration(x.started_ms, x.ended_ms) + ")" : "—"),
    h("td", {}, stopButton(x))));
  main.replaceChildren(h("h1", {}, "Sessions"),
    h("p", { class: "meta" }, ...codeText("Agents launched with `spendwall run`, newest first. Stopping one turns on its kill switch: its calls are refused at once and its program gets Ctrl+C.")),
    h("div", { class: "scroll" }, h("table", { id: "session-list" },
      h("thead", {}, h("tr", {}, h("th", {}, "session"), h("th", {}, "agent"), h("th", {}, "status"), h("th", { class: "num" }, "calls"),
        h("th", {}, "cost / budget"), h("th", { class: "hide-narrow" }, "started"), h("th", { class: "hide-narrow" }, "ended"), h("th", {}, ""))),
      h("tbody", {}, rows))));
}

function decodeBase64(text) {
  const bin = atob(text || "");
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (e) {
    const area = h("textarea", {}, text);
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  button.textContent = "copied";
  setTimeout(() => { button.textContent = "copy"; }, 1500);
}

function fact(label, value) {
  return value === null || value === undefined || value === "" ? null : h("div", { class: "fact" }, h("div", { class: "label" }, label), h("div", {}, value));
}

async function pageSession(id) {
  const title = h("h1", {}, h("a", { href: "#sessions" }, "Sessions"), " / ", id);
  main.replaceChildren(title, stateBox("loading", "Loading the session…"));
  let body;
  try {
    [body, state.kills] = await Promise.all([api("/sessions/" + encodeURIComponent(id)), api("/kill")]);
  } catch (e) {
    if (e.status === 404) { main.replaceChildren(title, stateBox("error", "No such session", e.message)); return; }
    throw e;
  }
  const x = body.session;
  const diffMeta = body.artifacts.find((a) => a.kind === "git_diff");
  const diff = diffMeta ? await api(`/sessions/${encodeURIComponent(id)}/artifacts/git_diff`) : null;
  const status = sessionStatus(x);
  const exit = x.exit_code !== undefined ? "exit code " + x.exit_code : x.exit_signal !== undefined ? "signal " + x.exit_signal : null;
  const resume = x.resume_command
    ? h("div", { class: "resume" }, h("code", { id: "resume-command" }, x.resume_command), " ",
      h("button", { class: "small", id: "copy-resume", onclick: (ev) => copyText(x.resume_command, ev.target) }, "copy"))
    : null;
  main.replaceChildren(h("h1", {}, h("a", { href: "#sessions" }, "Sessions"), " / ", sessionTitle(x)),
    h("div", { class: "card session-head", "data-session-detail": x.id },
      h("div", { class: "controls" },
        h("span", { class: "badge status-" + status, id: "session-status" }, status),
        exit ? h("span", { id: "session-exit" }, exit) : null,
        h("span", { class: "grow" }),
        stopButton(x)),
      budgetMeter(x, body.cap),
      h("div", { class: "facts" },
        fact("command", h("code", {}, x.command.join(" "))), fact("session", x.id), fact("agent", x.agent),
        fact("stop reason", x.stop_reason), fact("started", when(x.started_ms)),
        fact("ended", x.ended_ms ? when(x.ended_ms) + " (after " + duration(x.started_ms, x.ended_ms) + ")" : null),
        fact("directory", x.cwd), fact("git", x.git_branch ? x.git_branch + (x.git_head ? " @ " + x.git_head.slice(0, 12) : "") : null),
        fact("calls", count(x.spend ? x.spend.calls : 0)), fact("terminal", x.terminal)),
      resume ? h("div", {}, h("div", { class: "label" }, "resume where it stopped"), resume) : null),
    h("h2", {}, "Spend by model"),
    body.by_model.length === 0 ? stateBox("empty", "No calls in this session", "Its calls go through the proxy under `/session/" + x.id + "/` and are counted here.") :
      h("div", { class: "scroll" }, h("table", { id: "session-models" },
        h("thead", {}, h("tr", {}, h("th", {}, "model"), h("th", { class: "num" }, "calls"), h("th", { class: "num" }, "tokens in / out"), h("th", { class: "num" }, "cost"))),
        h("tbody", {}, body.by_model.map((m) => h("tr", {}, h("td", {}, m.model), h("td", { class: "num" }, count(m.calls)),
          h("td", { class: "num" }, count(m.input_tokens + m.cache_read_tokens + m.cache_write_tokens) + " / " + count(m.output_tokens)),
          h("td", { class: "num" }, dollars(m.cost_nanousd))))))),
    h("h2", {}, "Changed files"),
    body.changed_files
      ? (body.changed_files.length ? h("ul", { id: "changed-files", class: "files" }, body.changed_files.map((f) => h("li", {}, h("code", {}, f)))) : stateBox("empty", "Nothing changed", "The working tree was clean when the session ended."))
      : stateBox("empty", x.status === "running" ? "Not yet" : "No git snapshot", x.status === "running" ? "The changed files and the diff are recorded when the session ends." : "The session did not run in a git repository, so no snapshot was taken."),
    h("h2", {}, "Diff"),
    diff
      ? h("div", {}, h("p", { class: "meta", id: "diff-note" }, `${bytesText(diff.size)} kept (the daemon keeps at most ${ARTIFACT_CAP.git_diff} of a diff)` + (diff.truncated ? ": cut there, the rest was not kept." : ".")),
        h("pre", { id: "session-diff", class: "diff" }, decodeBase64(diff.content_base64)))
      : stateBox("empty", "No diff", x.status === "running" ? "Recorded when the session ends." : "No staged or unstaged changes were recorded."));
}

// ---------- Reconciliation ----------

function currentPeriod() {
  const d = new Date();
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

function shiftPeriod(period, by) {
  const [y, m] = period.split("-").map(Number);
  const d = new Date(Date.UTC(y, m - 1 + by, 1));
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`;
}

const NO_RECONCILIATION = "Reconciliation compares what providers billed with what the ledger saw. Get bills in with `[stripe]` in alerts.toml (a Stripe webhook sends invoices as they are paid), or import a provider's cost export: `spendwall reconcile import FILE`.";

async function pageReconcile(arg) {
  const period = /^\d{4}-\d{2}$/.test(arg || "") ? arg : currentPeriod();
  const go = (p) => { location.hash = "#reconcile/" + p; };
  const picker = h("input", { type: "month", id: "reconcile-period", value: period, onchange: (ev) => ev.target.value && go(ev.target.value) });
  const controls = h("div", { class: "controls" },
    h("button", { class: "small", id: "period-prev", onclick: () => go(shiftPeriod(period, -1)) }, "← previous"),
    picker,
    h("button", { class: "small", id: "period-next", onclick: () => go(shiftPeriod(period, 1)) }, "next →"),
    h("span", { class: "meta" }, "calendar months in UTC"));
  main.replaceChildren(h("h1", {}, "Reconciliation"), controls, stateBox("loading", "Loading " + period + "…"));
  const body = await api("/reconcile?period=" + encodeURIComponent(period));
  const billed = body.rows.filter((r) => r.billed_nanousd !== undefined && r.billed_nanousd !== null);
  let content;
  if (body.rows.length === 0) {
    content = stateBox("empty", "Nothing to reconcile for " + body.period, NO_RECONCILIATION);
  } else {
    const drifted = body.rows.filter((r) => r.drifted).length;
    content = h("div", {},
      h("p", { class: "meta", id: "reconcile-summary" }, drifted
        ? `${drifted} of ${body.rows.length} lines drifted past the threshold ([stripe] drift_threshold_usd / drift_threshold_percent in alerts.toml).`
        : `No line drifted past the threshold. Drift is billed minus what the ledger saw.`),
      h("div", { class: "scroll" }, h("table", { id: "reconcile-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "period"), h("th", {}, "provider"), h("th", {}, "source"), h("th", { class: "num" }, "billed"),
          h("th", { class: "num" }, "ledger"), h("th", { class: "num" }, "drift"), h("th", { class: "num" }, "drift %"), h("th", {}, ""))),
        h("tbody", {}, body.rows.map((r) => {
          const hasBill = r.billed_nanousd !== undefined && r.billed_nanousd !== null;
          return h("tr", { class: r.drifted ? "drifted" : "", "data-provider": r.provider, "data-source": r.source, "data-drifted": r.drifted ? "true" : "false" },
            h("td", {}, r.period), h("td", {}, r.provider), h("td", {}, r.source + (r.references > 1 ? ` (${r.references})` : "")),
            h("td", { class: "num" }, hasBill ? dollars(r.billed_nanousd) : "no bill"),
            h("td", { class: "num" }, dollars(r.ledger_nanousd)),
            h("td", { class: "num" }, r.drift_nanousd !== undefined && r.drift_nanousd !== null ? (r.drift_nanousd > 0 ? "+" : "") + dollars(r.drift_nanousd) : "—"),
            h("td", { class: "num" }, r.drift_percent !== undefined && r.drift_percent !== null ? r.drift_percent.toFixed(2) + "%" : "—"),
            h("td", {}, r.drifted ? h("span", { class: "flag" }, "DRIFT") : ""));
        })))),
      billed.length === 0 ? stateBox("empty", "No bill for " + body.period + " yet", NO_RECONCILIATION) : null);
  }
  main.replaceChildren(h("h1", {}, "Reconciliation"), controls, content);
}

// ---------- routing ----------

const PAGES = { now: pageNow, spend: pageSpend, caps: pageCaps, approvals: pageApprovals, sessions: pageSessions, session: pageSession, reconcile: pageReconcile };
// The nav entry of each page (a session's own page sits under Sessions).
const NAV = { session: "sessions" };
const TITLES = { session: "Session", reconcile: "Reconciliation" };
let renderSeq = 0;

async function render() {
  // #page or #page/argument (#session/ID, #reconcile/2026-11)
  const [page, ...rest] = (location.hash || "#now").slice(1).split("/");
  state.page = PAGES[page] ? page : "now";
  const arg = decodeURIComponent(rest.join("/"));
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === (NAV[state.page] || state.page));
  const seq = ++renderSeq;
  document.body.dataset.ready = "";
  try {
    await PAGES[state.page](arg);
  } catch (e) {
    if (seq === renderSeq) main.replaceChildren(h("h1", {}, TITLES[state.page] || state.page[0].toUpperCase() + state.page.slice(1)), errorBox(e));
  }
  if (seq === renderSeq) {
    document.body.dataset.ready = state.page;
    performance.mark("spendwall-ready:" + state.page); // for bench/panel: time from navigation to data on screen
  }
}

function setupNotifications() {
  const button = document.getElementById("enable-notifications");
  if (!("Notification" in window) || Notification.permission !== "default") return;
  button.hidden = false;
  button.addEventListener("click", async () => { await Notification.requestPermission(); button.hidden = true; });
}

async function boot() {
  try {
    const session = await api("/session");
    state.csrf = session.csrf;
  } catch (e) {
    main.replaceChildren(errorBox(e));
    document.body.dataset.ready = "error";
    return;
  }
  setupNotifications();
  connectEvents();
  window.addEventListener("hashchange", render);
  refreshApprovals();
  render();
}

boot();
