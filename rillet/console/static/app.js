// The console's pages: plain JavaScript over the JSON API, routed by the URL's #fragment.
"use strict";
const main = document.getElementById("main");
const esc = Chart.esc;
let timer = null;

async function api(path, options) {
  const resp = await fetch(path, options);
  const body = await resp.json();
  if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
  return body;
}
function table(headers, rows, id) {
  return `<table${id ? ` id="${id}"` : ""}><tr>${headers.map(h => `<th>${esc(h)}</th>`).join("")}</tr>` +
    rows.map(r => `<tr>${r.map(c => `<td>${c}</td>`).join("")}</tr>`).join("") + "</table>";
}
function showError(err) {
  main.insertAdjacentHTML("afterbegin", `<div class="error" id="error">${esc(err.message)}</div>`);
}
function shown(v) {
  if (v === null || v === undefined) return `<span class="muted">null</span>`;
  const note = v.truncated ? `<div class="muted">(first ${v.text.length} of ${v.size} bytes shown)</div>` : "";
  if (v.kind === "binary")
    return `<span class="binary">binary, ${v.size} bytes</span><pre>${esc(v.text)}</pre>${note}`;
  return `<pre class="${v.kind}">${esc(v.text)}</pre>${note}`;
}

// Rates from /api/throughput: per topic and (with brokers) per broker, from the brokers'
// Prometheus counters (two samples apart); or messages in per topic from log end offsets.
function perSecond(v, bytes) {
  if (v === null || v === undefined) return "";
  if (!bytes) return v.toFixed(1);
  const units = ["B/s", "KiB/s", "MiB/s", "GiB/s"];
  let n = v, u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return `${n.toFixed(1)} ${units[u]}`;
}
function showRates(t, withBrokers) {
  const el = document.getElementById("rates");
  if (!el) return;
  const cols = r => [perSecond(r.messages_in), perSecond(r.messages_out),
    perSecond(r.bytes_in, true), perSecond(r.bytes_out, true)];
  const heads = ["Messages in/s", "Messages out/s", "Bytes in/s", "Bytes out/s"];
  if (t.source !== "metrics") {
    const last = t.series.length ? t.series[t.series.length - 1].rates : {};
    el.innerHTML = `<p id="rates-state" class="muted">from log end offsets (start the console with ` +
      `--metrics, or use the profile of \`rillet cluster up\`, for byte rates and rates per broker)</p>` +
      table(["Topic", "Messages in/s"], Object.entries(last).map(([k, v]) => [esc(k), perSecond(v)]), "topic-rates");
    return;
  }
  if (!t.measured) {
    el.innerHTML = `<p id="rates-state" class="muted">collecting (rates need two samples of the metrics)...</p>`;
    return;
  }
  const age = new Date(t.time * 1000).toLocaleTimeString();
  el.innerHTML = `<p id="rates-state" class="muted">measured from the brokers' metrics at ${esc(age)}</p>` +
    (withBrokers ? table(["Broker", ...heads], t.brokers.map(b =>
      [esc(b.broker), ...(!b.up ? [`<span class="bad">down</span>`, "", "", ""] : b.rates ? cols(b.rates) : ["", "", "", ""])]), "broker-rates") : "") +
    table(["Topic", ...heads], Object.entries(t.topics).map(([k, r]) => [esc(k), ...cols(r)]), "topic-rates");
}

const pages = {
  async overview() {
    const o = await api("/api/overview");
    const health = o.health === "healthy" ? `<span class="ok">healthy</span>` : `<span class="bad">${esc(o.health)}</span>`;
    main.innerHTML = `<h2>Overview</h2><p>Cluster ${esc(o.cluster_id || "")} at ${esc(o.bootstrap)}: ${health};
      controller ${o.controller_id}; ${o.topics} topics, ${o.partitions} partitions.</p>
      <h3>Brokers</h3>` +
      table(["ID", "Address", "Rack", "Role", "Leader of"], o.brokers.map(b =>
        [b.id, esc(b.address), esc(b.rack || ""), b.controller ? "controller" : "", b.leaders]), "brokers") +
      `<h3>Under-replicated partitions (${o.under_replicated.length})</h3>` +
      table(["Partition", "Leader", "Replicas", "ISR"], o.under_replicated.map(u =>
        [esc(`${u.topic}-${u.partition}`), u.leader, u.replicas.join(","), u.isr.join(",")]), "under-replicated") +
      `<h3>Throughput</h3><div id="rates"></div><div id="throughput"></div>`;
    const tick = async () => {
      const t = await api("/api/throughput");
      const series = {};
      t.series.forEach(s => Object.entries(s.rates).forEach(([k, v]) => (series[k] = series[k] || []).push(v)));
      const el = document.getElementById("throughput");
      if (el) el.innerHTML = Object.keys(series).length ? Chart.lines(series) : `<span class="muted">collecting...</span>`;
      showRates(t, true);
    };
    await tick();
    timer = setInterval(() => tick().catch(() => {}), 2000);
  },
  async topics() {
    const ts = await api("/api/topics");
    main.innerHTML = `<h2>Topics</h2>` + table(["Name", "Partitions", "Replication", "Records", "Under-replicated"],
      ts.map(t => [`<a href="#/topic/${encodeURIComponent(t.name)}">${esc(t.name)}</a>`, t.partitions,
        t.replication_factor, t.records, t.under_replicated]), "topics") +
      `<h3>Rates</h3><div id="rates"></div>`;
    const tick = async () => showRates(await api("/api/throughput"), false);
    await tick();
    timer = setInterval(() => tick().catch(() => {}), 2000);
  },
  async topic(name) {
    const t = await api(`/api/topics/${encodeURIComponent(name)}`);
    main.innerHTML = `<h2>Topic ${esc(t.name)}</h2>
      <p><a href="#/messages/${encodeURIComponent(t.name)}">Browse messages</a>
      <button id="delete-topic">Delete topic...</button></p><h3>Partitions</h3>` +
      table(["Partition", "Leader", "Replicas", "ISR", "Start offset", "End offset"], t.partitions.map(p =>
        [p.partition, p.leader, p.replicas.join(","), p.isr.join(","), p.start_offset, p.end_offset]), "partitions") +
      `<h3>Configs</h3>` + table(["Name", "Value", "Source"], t.configs.map(c =>
        [esc(c.name), esc(c.value === null ? "(hidden)" : c.value), c.default ? "default" : "<b>override</b>"]), "configs");
    document.getElementById("delete-topic").onclick = async () => {
      const typed = prompt(`Delete topic ${t.name} and all its records? Type the topic name to confirm.`);
      if (typed === null) return;
      try {
        await api(`/api/topics/${encodeURIComponent(t.name)}/delete?confirm=${encodeURIComponent(typed)}`, {method: "POST"});
        location.hash = "#/topics";
      } catch (err) { showError(err); }
    };
  },
  async messages(name) {
    const topics = await api("/api/topics");
    const q = new URLSearchParams(location.hash.split("?")[1] || "");
    const topic = name || (topics[0] && topics[0].name) || "";
    main.innerHTML = `<h2>Messages</h2><form id="browse">
      <label>Topic <select name="topic">${topics.map(t => `<option${t.name === topic ? " selected" : ""}>${esc(t.name)}</option>`).join("")}</select></label>
      <label>Partition <input name="partition" size="3" value="${esc(q.get("partition") || 0)}"></label>
      <label>Offset <input name="offset" size="8" value="${esc(q.get("offset") || "")}" placeholder="latest"></label>
      <label>or time <input name="timestamp" size="14" value="${esc(q.get("timestamp") || "")}" placeholder="ms or ISO date"></label>
      <label>Limit <input name="limit" size="4" value="${esc(q.get("limit") || 50)}"></label>
      <button type="submit">Show</button></form><div id="records"></div>`;
    const form = document.getElementById("browse");
    form.onsubmit = ev => {
      ev.preventDefault();
      const f = new FormData(form), p = new URLSearchParams();
      for (const k of ["partition", "offset", "timestamp", "limit"]) {
        let v = (f.get(k) || "").trim();
        if (k === "timestamp" && v && isNaN(Number(v))) v = String(Date.parse(v));
        if (v) p.set(k, v);
      }
      location.hash = `#/messages/${encodeURIComponent(f.get("topic"))}?${p}`;
    };
    if (!topic) return;
    const p = new URLSearchParams(q);
    const out = document.getElementById("records");
    try {
      const m = await api(`/api/topics/${encodeURIComponent(topic)}/messages?${p}`);
      out.innerHTML = `<p id="range">${esc(topic)}-${m.partition}: offsets ${m.start_offset}..${m.end_offset - 1}, showing ${m.records.length}</p>` +
        table(["Offset", "Timestamp", "Key", "Value", "Headers"], m.records.map(r => [r.offset,
          esc(new Date(r.timestamp).toISOString()), shown(r.key), shown(r.value),
          r.headers.map(h => `${esc(h.key)}: ${shown(h.value)}`).join("")]), "messages");
    } catch (err) { out.innerHTML = `<div class="error" id="error">${esc(err.message)}</div>`; }
  },
  async groups() {
    const gs = await api("/api/groups");
    main.innerHTML = `<h2>Consumer groups</h2>` + table(["Group", "State", "Total lag"], gs.map(g =>
      [`<a href="#/group/${encodeURIComponent(g.group_id)}">${esc(g.group_id)}</a>`, esc(g.state), g.lag ?? "?"]), "groups");
  },
  async group(id) {
    const g = await api(`/api/groups/${encodeURIComponent(id)}`);
    const total = g.partitions.reduce((s, p) => s + (p.lag || 0), 0);
    main.innerHTML = `<h2>Group ${esc(g.group_id)}</h2><p>State ${esc(g.state)}, coordinator ${esc(g.coordinator)},
      total lag <b id="total-lag">${total}</b></p><h3>Members</h3>` +
      table(["Member", "Client", "Host", "Assignment"], g.members.map(m =>
        [esc(m.member_id), esc(m.client_id), esc(m.host), esc(m.assignment.join(", "))]), "members") +
      `<h3>Lag per partition</h3>` + table(["Partition", "Committed", "End offset", "Lag"], g.partitions.map(p =>
        [esc(`${p.topic}-${p.partition}`), p.committed, p.end_offset, p.lag]), "lag") +
      `<div id="lag-chart">${Chart.bars(g.partitions.map(p => ({label: `${p.topic}-${p.partition}`, value: p.lag || 0})))}</div>` +
      `<p><button data-to="earliest">Reset offsets to earliest...</button> <button data-to="latest">Reset offsets to latest...</button></p>`;
    main.querySelectorAll("button[data-to]").forEach(b => b.onclick = async () => {
      const typed = prompt(`Reset every committed offset of group ${g.group_id} to ${b.dataset.to}? Type the group id to confirm.`);
      if (typed === null) return;
      try {
        await api(`/api/groups/${encodeURIComponent(g.group_id)}/reset-offsets?to=${b.dataset.to}&confirm=${encodeURIComponent(typed)}`, {method: "POST"});
        route();
      } catch (err) { showError(err); }
    });
  },
  async connectors() {
    main.innerHTML = `<h2>Connectors</h2><div id="connectors"></div>`;
    const el = document.getElementById("connectors");
    try {
      const cs = await api("/api/connectors");
      el.innerHTML = table(["Connector", "State", "Worker", "Tasks", "Actions"], cs.map(c => [esc(c.name), esc(c.state),
        esc(c.worker || ""), c.tasks.map(t => `${t.id}: ${esc(t.state)}`).join("<br>"),
        ["pause", "resume", "restart"].map(a => `<button data-c="${esc(c.name)}" data-a="${a}">${a}</button>`).join(" ")]));
      el.querySelectorAll("button").forEach(b => b.onclick = async () => {
        try { await api(`/api/connectors/${encodeURIComponent(b.dataset.c)}/${b.dataset.a}`, {method: "POST"}); route(); }
        catch (err) { showError(err); }
      });
    } catch (err) { el.innerHTML = `<div class="error" id="error">${esc(err.message)}</div>`; }
  },
};

async function route() {
  if (timer) { clearInterval(timer); timer = null; }
  const [path] = (location.hash.slice(1) || "/overview").split("?");
  const [, page, arg] = path.split("/");
  const fn = pages[page] || pages.overview;
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.id === `nav-${page}` ||
    (page === "topic" && a.id === "nav-topics") || (page === "group" && a.id === "nav-groups")));
  main.innerHTML = "Loading...";
  try { await fn(arg ? decodeURIComponent(arg) : undefined); document.body.dataset.page = page || "overview"; }
  catch (err) { main.innerHTML = ""; showError(err); document.body.dataset.page = page || "overview"; }
}
window.addEventListener("hashchange", route);
route();
