// The drtc node dashboard (Specs/dashboard.md). Everything it loads or asks comes from the node
// that served it (the Content-Security-Policy says so to the browser). It refreshes itself by
// polling; it never writes node-supplied text as HTML (records are signed by strangers).
"use strict";
(() => {
  const OVERVIEW_MS = 2000, NODES_MS = 4000, QOS_MS = 15000;
  const ROW_H = 24, CHUNK = 2500;
  // Columns of /dashboard/nodes rows.
  const C = { id: 0, region: 1, lat: 2, lon: 3, load: 4, sessions: 5, maxSessions: 6, qos: 7, version: 8, expires: 9, url: 10 };
  const SORT_COLUMN = { nodeId: C.id, region: C.region, latitude: C.lat, longitude: C.lon, load: C.load, sessions: C.sessions,
    qos: C.qos, version: C.version, expiresAtMs: C.expires };
  // The map: equirectangular, latitudes 84°N to 58°S (Antarctica adds nothing here).
  const LAT_TOP = 84, LAT_BOTTOM = -58;

  const state = {
    overview: null, nodes: [], nodesVersion: null, view: [], me: null, coast: null, health: null,
    sortKey: "nodeId", sortDir: 1, filter: "", drawToken: 0, placed: [], lastOk: 0,
  };
  const stats = {
    // Milliseconds from the start of a /dashboard/nodes fetch to the last map chunk drawn and the
    // table rendered; the page's own share of it (parse, sort, table, map); when the first list
    // was drawn (since navigation); the longest main-thread task.
    nodesRenderMs: null, clientRenderMs: null, firstNodesRenderMs: null, renderedNodes: 0, renders: 0, longestTaskMs: 0,
    overviewRefreshes: 0, nodesRefreshes: 0, errors: [],
  };
  window.dashboard = { state, stats };

  const $ = (id) => document.getElementById(id);
  const text = (el, value) => { if (el.textContent !== value) el.textContent = value; };

  if ("PerformanceObserver" in window) {
    try {
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) stats.longestTaskMs = Math.max(stats.longestTaskMs, e.duration);
      }).observe({ type: "longtask", buffered: true });
    } catch (_) { /* longtask is not in every browser */ }
  }

  async function getJSON(path, etagged) {
    const response = await fetch(path, { cache: etagged ? "no-cache" : "no-store", headers: { Accept: "application/json" } });
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  function fmt(x, digits) { return x === null || x === undefined ? "–" : Number(x).toFixed(digits); }
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
    if (m > 0) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    return `${s}s`;
  }
  function qosColour(q) { return q === null || q === undefined ? "#8a94a6" : `hsl(${Math.round(120 * Math.min(1, Math.max(0, q)))}, 70%, 48%)`; }
  function cell(tr, value, title) {
    const td = document.createElement("td");
    td.textContent = value;
    if (title) td.title = title;
    tr.appendChild(td);
    return td;
  }
  function fillTable(tbody, rows, empty, columns) {
    const frag = document.createDocumentFragment();
    if (rows.length === 0) {
      const tr = document.createElement("tr");
      const td = cell(tr, empty);
      td.colSpan = columns;
      td.className = "empty";
      frag.appendChild(tr);
    }
    for (const r of rows) {
      const tr = document.createElement("tr");
      for (const v of r) cell(tr, v);
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
  }

  // MARK: this node

  async function refreshOverview() {
    try {
      const o = await getJSON("/dashboard/overview", false);
      if (!o) return;
      state.overview = o;
      state.me = o.peerId;
      state.lastOk = Date.now();
      stats.overviewRefreshes += 1;
      renderOverview(o);
    } catch (e) {
      note(e);
    }
  }

  function renderOverview(o) {
    text($("peer-id"), o.peerId);
    const status = $("status");
    text(status, o.status);
    status.className = "badge" + (o.status === "ok" ? "" : " degraded");
    text($("region"), o.region + (o.position ? ` (${fmt(o.position.latitude, 2)}, ${fmt(o.position.longitude, 2)})` : ""));
    text($("version"), o.version);
    text($("uptime"), duration(o.uptimeSeconds));
    text($("peers"), String(o.peers));
    text($("records"), String(o.records));
    text($("qos-score"), o.qos.measured ? fmt(o.qos.score, 3) : "unmeasured");
    $("qos-score").title = o.qos.source;
    text($("epoch"), String(o.epoch.epoch));
    text($("epoch-left"), `(${duration((o.epoch.endMs - o.nowMs) / 1000)} left)`);
    const src = o.rewardSources;
    text($("reward-sources"), `Inputs — availability: ${src.availability}; quality: ${src.quality}; data supplied: ${src.dataSupplied}; demand: ${src.demand}.`);
    fillTable($("rewards").tBodies[0], o.rewards.map((e) => {
      const r = e.row;
      // The running epoch, and the one before it while its reports are still published.
      const label = String(e.epoch) + (e.epoch === o.epoch.epoch ? " (now)" : e.final ? "" : " (provisional)");
      if (!r) return [label, "–", "–", "–", "–", "–", "–", "–", "–"];
      return [label, fmt(r.availability, 3), fmt(r.history, 3), fmt(r.location, 3), fmt(r.coverage, 3),
        r.qualityMeasured ? fmt(r.quality, 3) : "unmeasured", fmt(r.unitReward, 4), fmt(r.dataSuppliedMB, 1), fmt(r.reward, 3)];
    }), "no epoch observed yet", 9);
    const m = o.media;
    text($("media-summary"), `media ${m.status} · ${m.sessions} sessions · ${m.producers} tracks published · ${m.consumers} forwarded`);
    fillTable($("rooms").tBodies[0], m.rooms.map((r) => [r.room, String(r.publishers), String(r.viewers), String(r.tracks),
      r.pipes.length ? r.pipes.join(", ") : "none"]), "no rooms on this node", 5);
  }

  // MARK: the network

  async function refreshNodes() {
    const started = performance.now();
    try {
      const response = await fetch("/dashboard/nodes", { cache: "no-cache", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`/dashboard/nodes: HTTP ${response.status}`);
      const body = await response.text();
      const received = performance.now();
      const list = JSON.parse(body);
      stats.nodesRefreshes += 1;
      if (list.version === state.nodesVersion && state.nodes.length === list.count) return;
      state.nodesVersion = list.version;
      state.nodes = list.nodes;
      text($("node-count"), String(list.count));
      applyView();
      drawNodes(started, received);
    } catch (e) {
      note(e);
    }
  }

  function applyView() {
    const f = state.filter.trim().toLowerCase();
    let view = state.nodes;
    if (f) view = view.filter((n) => n[C.id].toLowerCase().includes(f) || n[C.region].toLowerCase().includes(f) || n[C.version].toLowerCase().includes(f));
    else view = view.slice();
    const col = SORT_COLUMN[state.sortKey], dir = state.sortDir;
    view.sort((a, b) => {
      const x = a[col], y = b[col];
      if (x === y) return a[C.id] < b[C.id] ? -1 : a[C.id] > b[C.id] ? 1 : 0;
      if (x === null) return 1;  // nulls last either way
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    state.view = view;
    text($("shown-count"), String(view.length));
    for (const th of $("nodes").tHead.rows[0].cells) {
      th.className = th.dataset.key === state.sortKey ? (state.sortDir > 0 ? "asc" : "desc") : "";
    }
    renderTableWindow();
  }

  // Only the rows in view are in the DOM, between two spacer rows: 10,000 nodes cost ~40 rows.
  function renderTableWindow() {
    const scroll = $("nodes-scroll");
    const tbody = $("nodes").tBodies[0];
    const view = state.view;
    const first = Math.max(0, Math.floor(scroll.scrollTop / ROW_H) - 5);
    const count = Math.ceil(scroll.clientHeight / ROW_H) + 10;
    const last = Math.min(view.length, first + count);
    const now = Date.now();
    const frag = document.createDocumentFragment();
    const spacer = (height) => {
      const tr = document.createElement("tr");
      tr.className = "spacer";
      const td = document.createElement("td");
      td.colSpan = 9;
      td.style.height = `${height}px`;
      tr.appendChild(td);
      return tr;
    };
    frag.appendChild(spacer(first * ROW_H));
    for (let i = first; i < last; i++) {
      const n = view[i];
      const tr = document.createElement("tr");
      if (n[C.id] === state.me) tr.className = "me";
      cell(tr, n[C.id], n[C.url]);
      cell(tr, n[C.region]);
      cell(tr, fmt(n[C.lat], 2));
      cell(tr, fmt(n[C.lon], 2));
      cell(tr, `${Math.round(n[C.load] * 100)}%`);
      cell(tr, n[C.maxSessions] ? `${n[C.sessions]}/${n[C.maxSessions]}` : String(n[C.sessions]));
      cell(tr, n[C.qos] === null ? "unmeasured" : fmt(n[C.qos], 3));
      cell(tr, n[C.version]);
      cell(tr, `in ${duration((n[C.expires] - now) / 1000)}`);
      frag.appendChild(tr);
    }
    frag.appendChild(spacer(Math.max(0, view.length - last) * ROW_H));
    tbody.replaceChildren(frag);
  }

  // MARK: the map

  const map = $("map");
  const ctx = map.getContext("2d");
  let land = null;  // an offscreen canvas with the coastline, drawn once per size

  function project(lat, lon) {
    return [(lon + 180) / 360 * map.width, (LAT_TOP - lat) / (LAT_TOP - LAT_BOTTOM) * map.height];
  }

  function drawLand() {
    land = document.createElement("canvas");
    land.width = map.width;
    land.height = map.height;
    const g = land.getContext("2d");
    g.fillStyle = "#0b1016";
    g.fillRect(0, 0, land.width, land.height);
    g.strokeStyle = "#1a2430";
    g.lineWidth = 1;
    for (let lon = -150; lon <= 180; lon += 30) {
      const [x] = project(0, lon);
      g.beginPath(); g.moveTo(x, 0); g.lineTo(x, land.height); g.stroke();
    }
    for (let lat = -30; lat <= 60; lat += 30) {
      const [, y] = project(lat, 0);
      g.beginPath(); g.moveTo(0, y); g.lineTo(land.width, y); g.stroke();
    }
    if (!state.coast) return;
    g.fillStyle = "#243140";
    const scale = state.coast.scale;
    for (const ring of state.coast.rings) {
      let lon = ring[0], lat = ring[1];
      g.beginPath();
      let [x, y] = project(lat / scale, lon / scale);
      g.moveTo(x, y);
      for (let i = 2; i < ring.length; i += 2) {
        lon += ring[i]; lat += ring[i + 1];
        [x, y] = project(lat / scale, lon / scale);
        g.lineTo(x, y);
      }
      g.closePath();
      g.fill();
    }
  }

  // Draws the nodes in chunks of CHUNK per animation frame, so 10,000 nodes never hold the
  // main thread for long; a newer list cancels a drawing in progress.
  function drawNodes(started, received) {
    const token = ++state.drawToken;
    if (!land) drawLand();
    ctx.drawImage(land, 0, 0);
    const nodes = state.nodes;
    const placed = [];
    let i = 0;
    let mine = null;
    const step = () => {
      if (token !== state.drawToken) return;
      const end = Math.min(nodes.length, i + CHUNK);
      for (; i < end; i++) {
        const n = nodes[i];
        if (n[C.lat] === null || n[C.lon] === null) continue;
        const [x, y] = project(n[C.lat], n[C.lon]);
        const r = 2.5 + 5 * Math.min(1, Math.max(0, n[C.load]));
        ctx.beginPath();
        ctx.arc(x, y, r, 0, 2 * Math.PI);
        ctx.fillStyle = qosColour(n[C.qos]);
        ctx.globalAlpha = 0.85;
        ctx.fill();
        placed.push([x, y, n]);
        if (n[C.id] === state.me) mine = [x, y, r];
      }
      if (i < nodes.length) {
        requestAnimationFrame(step);
        return;
      }
      ctx.globalAlpha = 1;
      if (mine) {
        ctx.beginPath();
        ctx.arc(mine[0], mine[1], mine[2] + 4, 0, 2 * Math.PI);
        ctx.strokeStyle = "#ffffff";
        ctx.lineWidth = 2;
        ctx.stroke();
      }
      state.placed = placed;
      text($("map-placed"), String(placed.length));
      const ms = performance.now() - started;
      stats.nodesRenderMs = ms;
      stats.clientRenderMs = performance.now() - received;
      stats.renderedNodes = nodes.length;
      stats.renders += 1;
      if (stats.firstNodesRenderMs === null) stats.firstNodesRenderMs = performance.now();
      text($("render-stats"), `· ${nodes.length} nodes: fetched and drawn in ${ms.toFixed(0)} ms (${stats.clientRenderMs.toFixed(0)} ms in the page)`);
    };
    step();
  }

  map.addEventListener("mousemove", (ev) => {
    const rect = map.getBoundingClientRect();
    const x = (ev.clientX - rect.left) * map.width / rect.width, y = (ev.clientY - rect.top) * map.height / rect.height;
    let best = null, bestD = 100;
    for (const p of state.placed) {
      const d = (p[0] - x) ** 2 + (p[1] - y) ** 2;
      if (d < bestD) { bestD = d; best = p; }
    }
    const tip = $("tooltip");
    if (!best) { tip.hidden = true; return; }
    const n = best[2];
    tip.textContent = `${n[C.id].slice(0, 16)}… ${n[C.region]} · load ${Math.round(n[C.load] * 100)}% · QoS ${n[C.qos] === null ? "unmeasured" : fmt(n[C.qos], 3)}`;
    tip.style.left = `${best[0] * rect.width / map.width + 10}px`;
    tip.style.top = `${best[1] * rect.height / map.height + 10}px`;
    tip.hidden = false;
  });
  map.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });

  // MARK: QoS tests (the QoS protocol's endpoints; absent on nodes without it)

  async function refreshQoS() {
    try {
      state.health = await getJSON("/health", false);
      const available = state.health && "qosDigest" in state.health;
      if (!available) {
        text($("qos-state"), "this node does not run QoS tests yet");
        fillTable($("qos-received").tBodies[0], [], "no QoS on this node", 4);
        fillTable($("qos-given").tBodies[0], [], "no QoS on this node", 4);
        return;
      }
      if (!state.me || !state.overview) return;
      const previous = Math.max(0, state.overview.epoch.epoch - 1);
      const [received, assignments] = await Promise.all([
        getJSON(`/qos/reports?node=${encodeURIComponent(state.me)}`, false),
        getJSON(`/qos/assignments?epoch=${previous}`, false),
      ]);
      text($("qos-state"), `epoch ${previous} assignments, reports on this node`);
      fillTable($("qos-received").tBodies[0], ((received && received.reports) || []).slice(0, 20).map((r) =>
        [String(r.epoch), String(r.challenger).slice(8, 16) + "…", String(r.outcome), r.counted ? "yes" : (r.reason || "no")]),
      "no reports on this node", 4);
      fillTable($("qos-given").tBodies[0], ((assignments && assignments.pairs) || []).filter((p) => p.challenger === state.me).slice(0, 20).map((p) =>
        [String(previous), String(p.prover).slice(8, 16) + "…", p.reported ? "yes" : "no", p.counted ? "yes" : "no"]),
      "no tests given", 4);
    } catch (e) {
      note(e);
    }
  }

  function note(e) {
    stats.errors.push(String(e && e.message || e));
    if (stats.errors.length > 20) stats.errors.shift();
  }

  function liveness() {
    const age = Date.now() - state.lastOk;
    $("live").className = "live " + (age < 3 * OVERVIEW_MS ? "fresh" : "stale");
    $("live").title = state.lastOk ? `last refresh ${Math.round(age / 1000)} s ago` : "not connected";
  }

  // MARK: wiring

  for (const th of $("nodes").tHead.rows[0].cells) {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      state.sortDir = key === state.sortKey ? -state.sortDir : 1;
      state.sortKey = key;
      applyView();
    });
  }
  let filterTimer = 0;
  $("filter").addEventListener("input", (ev) => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { state.filter = ev.target.value; applyView(); }, 120);
  });
  let scrollQueued = false;
  $("nodes-scroll").addEventListener("scroll", () => {
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => { scrollQueued = false; renderTableWindow(); });
  });

  async function start() {
    const coast = getJSON("/dashboard/coastline.json", true).catch((e) => { note(e); return null; });
    await refreshOverview();
    state.coast = await coast;
    drawLand();
    ctx.drawImage(land, 0, 0);
    await refreshNodes();
    refreshQoS();
    setInterval(refreshOverview, OVERVIEW_MS);
    setInterval(refreshNodes, NODES_MS);
    setInterval(refreshQoS, QOS_MS);
    setInterval(liveness, 1000);
  }
  start();
})();
