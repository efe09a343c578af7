/* Supervisor dashboard: a live view of the call center over the /callcenter WebSocket.
 *
 * Vue 3's global build, used with render functions only: no runtime template
 * compilation, so the page runs under a Content-Security-Policy without
 * 'unsafe-eval' or inline scripts. Vue escapes every text it renders.
 */
(function () {
  "use strict";

  const { createApp, reactive, h, watchEffect } = Vue;

  const PAUSE_REASONS = ["Break", "Lunch", "Training", "After call work", "Meeting", "Other"];
  const MAX_REASON = 64; // the server refuses longer reasons
  // Device states (QueueMember Status) in which the queue cannot ring the agent's phone.
  const PHONE_DOWN = new Set(["UNAVAILABLE", "INVALID"]);
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 10000;
  const ERROR_SHOWN_MS = 8000;

  const AGENT_ORDER = { INCALL: 0, AVAIL: 1, LOGGEDIN: 2, PAUSED: 3 };
  const AGENT_STATUS = {
    AVAIL: ["Available", "avail"],
    INCALL: ["In call", "incall"],
    PAUSED: ["Paused", "paused"],
    LOGGEDIN: ["Logged in", "loggedin"],
  };

  const state = reactive({
    conn: "connecting", // connecting | open | closed
    retryAt: 0,
    stats: null,
    agents: {},
    calls: {},
    connects: {},
    config: { sla: 10, sla_target: 80 },
    skew: 0, // server clock minus ours, seconds
    now: Date.now() / 1000,
    errors: [],
    pauseFor: null, // agent whose pause dialog is open
    pauseText: "",
    user: null, // {name, role, commands: all|own|none, agent?, queues?} from config.json
    health: null, // the server's HEALTH: PBX link and Redis (null: a server that sends none)
  });

  const SESSION_ENDED = 4401; // close code: logged out, expired or revoked

  // ---- server connection -------------------------------------------------

  let ws = null;
  let attempts = 0;
  let expectSnapshot = false;
  let retryTimer = null;
  let errorSeq = 0;

  function wsUrl() {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/callcenter";
  }

  function loadConfig() {
    fetch("config.json", { cache: "no-store", credentials: "same-origin" })
      .then((r) => {
        if (r.status === 401) location.replace("login"); // no session (any more)
        return r.ok ? r.json() : null;
      })
      .then((c) => {
        if (!c) return;
        if (c.user && typeof c.user === "object") state.user = c.user;
        if (typeof c.sla === "number") state.config.sla = c.sla;
        if (typeof c.sla_target === "number") state.config.sla_target = c.sla_target;
        if (typeof c.now === "number") {
          const skew = c.now - Date.now() / 1000;
          state.skew = Math.abs(skew) > 1.5 ? skew : 0;
        }
      })
      .catch(() => {});
  }

  function connect() {
    retryTimer = null;
    state.conn = "connecting";
    let sock;
    try {
      sock = new WebSocket(wsUrl());
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.onopen = () => {
      loadConfig();
      expectSnapshot = true;
      sock.send("HELLO");
    };
    sock.onmessage = (ev) => {
      if (typeof ev.data === "string") handleFrame(ev.data);
    };
    sock.onclose = (ev) => {
      if (ws !== sock) return;
      ws = null;
      state.conn = "closed";
      if (ev.code === SESSION_ENDED) {
        location.reload(); // to the login page (a wallboard's ?token= logs in again)
        return;
      }
      loadConfig(); // a refused handshake may mean the session is gone: login page
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempts);
    attempts += 1;
    const delay = Math.round(base * (0.75 + Math.random() * 0.5)); // jitter: no thundering herd
    state.retryAt = Date.now() + delay;
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function handleFrame(text) {
    const objects = [];
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        objects.push(JSON.parse(line));
      } catch (e) {
        console.warn("ignoring a line that is not JSON:", line);
      }
    }
    // The service's settings (pause reasons...) open the HELLO answer, before STATS.
    if (expectSnapshot && objects.length && objects[0].type === "CONFIG") {
      state.config = objects.shift();
    }
    // The answer to HELLO is the first frame after it and starts with STATS:
    // it replaces everything the page knew.
    if (expectSnapshot && objects.length && objects[0].type === "STATS") {
      expectSnapshot = false;
      attempts = 0;
      const agents = {};
      const calls = {};
      const connects = {};
      for (const o of objects) {
        if (o.type === "AGENT" && o.status !== "LOGGEDOUT") agents[o.agentid] = o;
        else if (o.type === "CALL" && o.status !== "HANGUP" && o.status !== "ABANDON") calls[o.id] = o;
        else if (o.type === "CONNECT" && o.status !== "HANGUP") connects[o.id] = o;
        else if (o.type === "HEALTH") applyHealth(o);
      }
      state.stats = objects[0];
      state.agents = agents;
      state.calls = calls;
      state.connects = connects;
      state.conn = "open";
      return;
    }
    for (const o of objects) apply(o);
  }

  function apply(o) {
    switch (o.type) {
      case "STATS":
        state.stats = o;
        break;
      case "AGENT":
        if (o.status === "LOGGEDOUT") delete state.agents[o.agentid];
        else state.agents[o.agentid] = o;
        break;
      case "CALL":
        if (o.status === "HANGUP" || o.status === "ABANDON") {
          delete state.calls[o.id];
          delete state.connects[o.id];
        } else {
          state.calls[o.id] = o;
        }
        break;
      case "CONNECT":
        if (o.status === "HANGUP") delete state.connects[o.id];
        else state.connects[o.id] = o;
        break;
      case "ERROR":
        showError(o.message);
        break;
      case "HEALTH":
        applyHealth(o);
        break;
      default:
        break;
    }
  }

  function send(frame) {
    if (ws && ws.readyState === WebSocket.OPEN) {
      ws.send(frame);
      return true;
    }
    showError("Not connected to the server: nothing was sent.");
    return false;
  }

  function cleanReason(reason) {
    return String(reason || "")
      .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ")
      .trim()
      .slice(0, MAX_REASON);
  }

  function pause(agentid, reason) {
    const r = cleanReason(reason);
    send(r ? `PAUSE:${agentid}:${r}` : `PAUSE:${agentid}`);
    closePause();
  }

  function avail(agentid) {
    send(`AVAIL:${agentid}`);
  }

  // Which agents' buttons this user gets: the server refuses the others anyway.
  function mayCommand(agentid) {
    const u = state.user;
    if (!u) return true;
    if (u.commands === "all") return true;
    return u.commands === "own" && String(u.agent) === String(agentid);
  }

  function logout() {
    fetch("logout", { method: "POST", credentials: "same-origin", cache: "no-store" })
      .catch(() => {})
      .finally(() => location.replace("login"));
  }

  function openPause(agentid) {
    state.pauseFor = agentid;
    state.pauseText = "";
  }

  function closePause() {
    state.pauseFor = null;
    state.pauseText = "";
  }

  function showError(message) {
    const id = ++errorSeq;
    state.errors.push({ id, message: String(message || "error") });
    setTimeout(() => dismissError(id), ERROR_SHOWN_MS);
  }

  function dismissError(id) {
    const i = state.errors.findIndex((e) => e.id === id);
    if (i >= 0) state.errors.splice(i, 1);
  }

  // ---- link health (HEALTH, docs/protocol.md) --------------------------------

  function applyHealth(o) {
    const link = (x) => (x && typeof x === "object" ? x : {});
    const pbx = link(o.pbx);
    const store = link(o.store);
    state.health = {
      pbx: { up: pbx.up === true, synced: pbx.synced === true, since: Number(pbx.since) || 0, error: String(pbx.error || "") },
      store: { up: store.up === true, since: Number(store.since) || 0, error: String(store.error || "") },
    };
  }

  // "up" | "syncing" | "down", or "unknown" from a server that sends no HEALTH.
  function pbxState() {
    const p = state.health?.pbx;
    if (!p) return "unknown";
    if (!p.up) return "down";
    return p.synced ? "up" : "syncing";
  }

  // Figures are live, and commands make sense, only with both links up.
  function live() {
    const p = pbxState();
    return state.conn === "open" && (p === "up" || p === "unknown");
  }

  function syncing() {
    return state.conn === "open" && pbxState() === "syncing";
  }

  function clock(t) {
    if (!t) return "—";
    const d = new Date(t * 1000);
    return `${String(d.getHours()).padStart(2, "0")}:${String(d.getMinutes()).padStart(2, "0")}`;
  }

  function healthBanners() {
    if (state.conn !== "open" || !state.health) return null;
    const { pbx, store } = state.health;
    const out = [];
    if (!pbx.up) {
      out.push(h("div", { id: "pbx-banner", class: "alert alert-danger health-banner mb-0", role: "alert", title: pbx.error || null },
        [h("strong", `No connection to the PBX since ${clock(pbx.since)}`), " — figures are frozen", pbx.error ? h("span", { class: "health-why" }, ` (${pbx.error})`) : null]));
    } else if (!pbx.synced) {
      out.push(h("div", { id: "pbx-syncing", class: "alert alert-info health-banner mb-0", role: "status" }, "Syncing with the PBX…"));
    }
    if (!store.up) {
      out.push(h("div", { id: "store-banner", class: "alert alert-warning health-banner health-quiet mb-0", role: "status", title: store.error || null },
        `Redis unavailable since ${clock(store.since)}: state not being saved`));
    }
    return out.length ? h("div", { class: "health-banners" }, out) : null;
  }

  // ---- formatting ----------------------------------------------------------

  function elapsed(t) {
    return t ? Math.max(0, Math.floor(state.now - t)) : null;
  }

  function dur(s) {
    if (s === null || s === undefined || Number.isNaN(Number(s))) return "—";
    s = Math.max(0, Math.floor(Number(s)));
    const hh = Math.floor(s / 3600);
    const mm = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
  }

  function pct(x) {
    return x === null || x === undefined ? "—" : `${Number(x).toFixed(1)}%`;
  }

  function num(x) {
    return x === null || x === undefined ? "—" : String(x);
  }

  function slaLevel(value, answered) {
    if (!answered) return "neutral";
    const target = state.config.sla_target;
    if (value >= target) return "good";
    return value >= target - 10 ? "warn" : "bad";
  }

  function waitLevel(s) {
    if (s === null || s === undefined) return "neutral";
    const sla = state.config.sla;
    if (s > sla) return "bad";
    return s > sla * 0.6 ? "warn" : "good";
  }

  // ---- derived views -------------------------------------------------------

  function waitingCalls() {
    return Object.values(state.calls)
      .filter((c) => c.status === "QUEUED" || c.status === "NA")
      .sort((a, b) => (a.time || 0) - (b.time || 0) || String(a.id).localeCompare(String(b.id)));
  }

  function agentsSorted() {
    return Object.values(state.agents).sort(
      (a, b) =>
        (AGENT_ORDER[a.status] ?? 9) - (AGENT_ORDER[b.status] ?? 9) ||
        String(a.agentid).localeCompare(String(b.agentid), undefined, { numeric: true })
    );
  }

  function connectsSorted() {
    return Object.values(state.connects).sort((a, b) => (a.time || 0) - (b.time || 0));
  }

  // Longest wait ticks live from the queued calls; STATS' figure is its fallback.
  function longestWait(queue) {
    let oldest = null;
    for (const c of Object.values(state.calls)) {
      if (c.status !== "QUEUED" || (queue && c.queue !== queue) || !c.time) continue;
      if (oldest === null || c.time < oldest) oldest = c.time;
    }
    if (oldest !== null) return elapsed(oldest);
    const s = queue ? state.stats?.queues?.[queue] : state.stats;
    return s && s.calls_waiting ? s.longest_wait ?? null : 0;
  }

  function agentName(a) {
    return a && a.name ? a.name : a ? a.agentid : "";
  }

  // ---- rendering -----------------------------------------------------------

  function connBadge() {
    let label;
    const pbx = pbxState();
    let look = state.conn;
    if (state.conn === "open" && pbx === "down") [label, look] = ["No PBX link", "pbxdown"];
    else if (state.conn === "open" && pbx === "syncing") [label, look] = ["Syncing…", "syncing"];
    else if (state.conn === "open") label = "Live";
    else if (state.conn === "connecting") label = "Connecting…";
    else {
      const secs = Math.max(0, Math.ceil((state.retryAt - state.now * 1000 + state.skew * 1000) / 1000));
      label = `Disconnected · retry in ${secs} s`;
    }
    return h(
      "span",
      { id: "conn", class: ["conn", `conn-${look}`], "data-state": state.conn, "data-pbx": pbx, role: "status", "aria-live": "polite" },
      [h("span", { class: "conn-dot" }), label]
    );
  }

  function header() {
    const day = state.stats?.day;
    return h("header", { class: "topbar" }, [
      h("div", { class: "brand" }, [
        h("img", { src: "favicon.svg", alt: "", class: "brand-logo" }),
        h("span", "Call center"),
      ]),
      h("div", { class: "topbar-meta" }, [
        day ? h("span", { class: "day" }, day) : null,
        h("span", { class: "sla-note" }, `SLA ${state.config.sla} s · target ${state.config.sla_target}%`),
        connBadge(),
        whoAmI(),
      ]),
    ]);
  }

  function whoAmI() {
    const u = state.user;
    if (!u || u.name === "anonymous") return null; // open service: nobody to log out
    return h("span", { class: "who", "data-user": u.name, "data-role": u.role }, [
      h("span", { class: "fw-semibold" }, u.name),
      h("span", { class: "badge text-bg-secondary role" }, u.role),
      h("button", { type: "button", class: "btn btn-sm btn-outline-secondary", "data-action": "logout", onClick: logout }, "Log out"),
    ]);
  }

  function tile(key, label, value, level, sub, big) {
    return h("div", { class: big ? "col-6 col-lg-3" : "col-6 col-sm-4 col-md-3 col-xxl" }, [
      h("div", { class: ["kpi", big ? "kpi-big" : "kpi-small", `lvl-${level || "neutral"}`], "data-kpi": key }, [
        h("div", { class: "kpi-label" }, label),
        h("div", { class: "kpi-value" }, value),
        sub ? h("div", { class: "kpi-sub" }, sub) : null,
      ]),
    ]);
  }

  // A figure with no data behind it yet is "—", not 0 or 0.0% (an average of no
  // calls, a service level with no answered call); "syncing" before the first
  // reconcile, when even the counts are not facts yet.
  function given(value, count) {
    return count ? value : null;
  }

  function abandonSub(s) {
    // Queue timeouts (left unanswered without hanging up there) next to the rate.
    const parts = [];
    if (s.abandon_rate !== undefined) parts.push(`rate ${pct(given(s.abandon_rate, s.calls_received))}`);
    if (s.calls_timeout) parts.push(`${num(s.calls_timeout)} timed out`);
    return parts.length ? parts.join(" · ") : null;
  }

  function kpis() {
    const s = state.stats || {};
    const waiting = s.calls_waiting ?? waitingCalls().filter((c) => c.status === "QUEUED").length;
    const longest = longestWait(null);
    const agents = Object.values(state.agents);
    const avail = agents.filter((a) => a.status === "AVAIL").length;
    const online = s.agents_online ?? agents.length;
    const answered = s.calls_answered;
    const closed = (s.calls_answered || 0) + (s.calls_abandoned || 0);
    const x = syncing() ? () => "syncing" : (v) => v;
    return [
      h("div", { class: "row g-3 mb-3" }, [
        tile("calls_waiting", "Calls waiting", x(num(waiting)), waiting ? (waiting > avail ? "bad" : "warn") : "good", null, true),
        tile("longest_wait", "Longest wait", x(dur(longest)), waiting ? waitLevel(longest) : "good", `SLA ${state.config.sla} s`, true),
        tile("sla", "Service level", x(pct(given(s.sla, answered))), slaLevel(s.sla, answered), `target ${state.config.sla_target}%`, true),
        tile("agents_online", "Agents available", x(`${avail} / ${num(online)}`), avail ? "good" : online ? "warn" : "neutral", "available / online", true),
      ]),
      h("div", { class: "row g-3 mb-3" }, [
        tile("calls_received", "Received", x(num(s.calls_received))),
        tile("calls_answered", "Answered", x(num(s.calls_answered))),
        tile("calls_abandoned", "Abandoned", x(num(s.calls_abandoned)), s.calls_abandoned ? "warn" : "neutral", abandonSub(s)),
        tile("connections_online", "In conversation", x(num(s.connections_online))),
        tile("average_queue_time", "Avg wait", x(dur(given(s.average_queue_time, answered)))),
        tile("average_handle_time", "Avg handle", x(dur(given(s.average_handle_time, answered)))),
        tile("average_abandoned_time", "Avg abandon after", x(dur(given(s.average_abandoned_time, s.calls_abandoned)))),
        tile("sla_with_abandoned", "SLA incl. abandoned", x(pct(given(s.sla_with_abandoned, closed))), slaLevel(s.sla_with_abandoned, closed)),
      ]),
    ];
  }

  function card(title, count, body, extraClass) {
    return h("section", { class: ["card", "panel", extraClass] }, [
      h("div", { class: "card-header panel-header" }, [
        h("h2", title),
        count !== null && count !== undefined ? h("span", { class: "badge rounded-pill text-bg-secondary panel-count" }, String(count)) : null,
      ]),
      h("div", { class: "card-body p-0" }, body),
    ]);
  }

  // Columns that give way on smaller screens (Bootstrap display utilities).
  const MD = "d-none d-md-table-cell";
  const XXL = "d-none d-xxl-table-cell";

  function table(head, rows, empty) {
    if (!rows.length) return h("p", { class: "empty" }, empty);
    return h("div", { class: "table-responsive" }, [
      h("table", { class: "table table-sm table-hover align-middle mb-0" }, [
        h("thead", [h("tr", head.map((c) => h("th", { class: c[1] || null }, c[0])))]),
        h("tbody", rows),
      ]),
    ]);
  }

  function waitingCard() {
    const calls = waitingCalls();
    const rows = calls.map((c) => {
      const w = elapsed(c.time);
      return h("tr", { key: c.id, "data-call": c.id }, [
        h("td", { class: "fw-semibold text-nowrap" }, [
          c.callerid || "unknown",
          c.status === "NA" ? h("span", { class: "badge text-bg-secondary ms-2" }, "IVR") : null,
        ]),
        h("td", { class: `${MD} text-nowrap` }, c.queue || "—"),
        h("td", { class: ["text-end", "tick", c.status === "QUEUED" ? `txt-${waitLevel(w)}` : null] }, dur(w)),
      ]);
    });
    return card("Waiting calls", calls.length, [table([["Caller"], ["Queue", MD], ["Waiting", "text-end"]], rows, "No calls waiting")], "panel-calls");
  }

  function queuesCard() {
    const queues = state.stats?.queues || {};
    const names = Object.keys(queues).sort();
    const rows = names.map((name) => {
      const q = queues[name] || {};
      const lw = longestWait(name);
      return h("tr", { key: name, "data-queue": name }, [
        h("td", { class: "fw-semibold text-nowrap" }, name),
        h("td", { class: ["text-end", q.calls_waiting ? "txt-warn fw-bold" : null] }, num(q.calls_waiting)),
        h("td", { class: ["text-end", "tick", q.calls_waiting ? `txt-${waitLevel(lw)}` : null] }, q.calls_waiting ? dur(lw) : "—"),
        h("td", { class: `text-end ${MD}` }, num(q.calls_received)),
        h("td", { class: `text-end ${MD}` }, num(q.calls_answered)),
        h("td", { class: `text-end ${MD}` }, num(q.calls_abandoned)),
        h("td", { class: ["text-end", `txt-${slaLevel(q.sla, q.calls_answered)}`] }, pct(given(q.sla, q.calls_answered))),
        h("td", { class: `text-end ${MD}` }, dur(given(q.average_queue_time, q.calls_answered))),
        h("td", { class: `text-end ${MD}` }, dur(given(q.average_handle_time, q.calls_answered))),
      ]);
    });
    const head = [["Queue"], ["Waiting", "text-end"], ["Longest", "text-end"], ["Recv.", `text-end ${MD}`], ["Answ.", `text-end ${MD}`], ["Aband.", `text-end ${MD}`], ["SLA", "text-end"], ["Avg wait", `text-end ${MD}`], ["Avg handle", `text-end ${MD}`]];
    return card("Queues", names.length, [table(head, rows, "No queue figures yet")], "panel-queues");
  }

  function agentsCard() {
    const agents = agentsSorted();
    const rows = agents.map((a) => {
      const [label, cls] = AGENT_STATUS[a.status] || [a.status, "other"];
      return h("tr", { key: a.agentid, "data-agent": a.agentid, "data-status": a.status, class: `agent-${cls}` }, [
        h("td", [
          h("div", { class: "agent-name" }, agentName(a)),
          a.name ? h("div", { class: "agent-id" }, a.agentid) : null,
        ]),
        h("td", [
          h("span", { class: ["status", `status-${cls}`], "data-role": "status" }, label),
          PHONE_DOWN.has(a.device)
            ? h("span", { class: "badge text-bg-danger ms-2", "data-role": "device", title: `Phone ${a.device}` }, "phone offline")
            : null,
        ]),
        h("td", { class: "text-end tick", "data-role": "since" }, dur(elapsed(a.time))),
        h("td", { class: "reason", "data-role": "reason", title: a.status === "PAUSED" ? a.reason || null : null }, a.status === "PAUSED" ? a.reason || "—" : ""),
        h("td", { class: `queue-col ${XXL}` }, a.queue || "—"),
        h("td", { class: `text-end ${MD}` }, num(a.calls_taken ?? null)),
        h("td", { class: `text-end ${MD}` }, a.talk_time !== undefined ? dur(a.talk_time) : "—"),
        h("td", { class: "text-end actions" }, !mayCommand(a.agentid) ? [] : [
          h("button", { type: "button", class: "btn btn-sm btn-outline-warning", "data-action": "pause", disabled: !live(), onClick: () => openPause(a.agentid) }, "Pause"),
          h("button", { type: "button", class: "btn btn-sm btn-outline-success", "data-action": "avail", disabled: !live() || a.status === "AVAIL" || a.status === "INCALL", onClick: () => avail(a.agentid) }, "Available"),
        ]),
      ]);
    });
    const head = [["Agent"], ["Status"], ["Time", "text-end"], ["Reason"], ["Queue", XXL], ["Calls", `text-end ${MD}`], ["Talk", `text-end ${MD}`], ["", "text-end"]];
    return card("Agents", agents.length, [table(head, rows, "No agent logged in")], "panel-agents");
  }

  function connectsCard() {
    const conns = connectsSorted();
    const rows = conns.map((c) =>
      h("tr", { key: c.id, "data-connect": c.id }, [
        h("td", { class: "fw-semibold text-nowrap" }, agentName(c.agent)),
        h("td", { class: "text-nowrap" }, c.call?.callerid || "unknown"),
        h("td", { class: `${MD} text-nowrap` }, c.queue || "—"),
        h("td", { class: "text-end tick" }, dur(elapsed(c.time))),
      ])
    );
    return card("Conversations", conns.length, [table([["Agent"], ["Caller"], ["Queue", MD], ["Talking", "text-end"]], rows, "Nobody is on a call")], "panel-connects");
  }

  function pauseDialog() {
    const id = state.pauseFor;
    if (id === null) return null;
    const agent = state.agents[id];
    const title = agent && agent.name ? `${agent.name} (${id})` : id;
    return [
      h("div", { class: "modal-backdrop show" }),
      h("div", { class: "modal d-block", role: "dialog", "aria-modal": "true", "aria-labelledby": "pause-title", onClick: (e) => { if (e.target === e.currentTarget) closePause(); } }, [
        h("div", { class: "modal-dialog modal-dialog-centered" }, [
          h("div", { class: "modal-content", "data-dialog": "pause" }, [
            h("div", { class: "modal-header" }, [
              h("h5", { class: "modal-title", id: "pause-title" }, `Pause ${title}`),
              h("button", { type: "button", class: "btn-close", "aria-label": "Close", onClick: closePause }),
            ]),
            h("div", { class: "modal-body" }, [
              h("div", { class: "reason-grid" }, PAUSE_REASONS.map((r) =>
                h("button", { type: "button", class: "btn btn-outline-warning", "data-reason": r, onClick: () => pause(id, r) }, r)
              )),
              h("form", { class: "mt-3", onSubmit: (e) => { e.preventDefault(); pause(id, state.pauseText); } }, [
                h("label", { class: "form-label", for: "pause-text" }, "Or type a reason"),
                h("div", { class: "input-group" }, [
                  h("input", { id: "pause-text", class: "form-control", maxlength: MAX_REASON, autocomplete: "off", value: state.pauseText, onInput: (e) => { state.pauseText = e.target.value; } }),
                  h("button", { type: "submit", class: "btn btn-warning" }, "Pause"),
                ]),
              ]),
            ]),
            h("div", { class: "modal-footer" }, [
              h("button", { type: "button", class: "btn btn-secondary", onClick: closePause }, "Cancel"),
            ]),
          ]),
        ]),
      ]),
    ];
  }

  function errorsView() {
    return h("div", { class: "toasts" }, state.errors.map((e) =>
      h("div", { key: e.id, class: "alert alert-danger alert-dismissible shadow mb-2", role: "alert", "data-error": "" }, [
        e.message,
        h("button", { type: "button", class: "btn-close", "aria-label": "Close", onClick: () => dismissError(e.id) }),
      ])
    ));
  }

  const App = {
    render() {
      return h("div", { class: ["dash", live() ? null : "stale"], "data-live": live() ? "yes" : "no" }, [
        header(),
        healthBanners(),
        errorsView(),
        h("main", { class: "container-fluid px-3 px-xl-4 pb-4" }, [
          ...kpis(),
          h("div", { class: "row g-3" }, [
            h("div", { class: "col-12 col-xl-4 d-flex flex-column gap-3" }, [waitingCard(), connectsCard()]),
            h("div", { class: "col-12 col-xl-8 d-flex flex-column gap-3" }, [agentsCard(), queuesCard()]),
          ]),
        ]),
        pauseDialog(),
      ]);
    },
  };

  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.pauseFor !== null) closePause();
  });
  setInterval(() => {
    state.now = Date.now() / 1000 + state.skew;
  }, 1000);

  watchEffect(() => {
    const waiting = state.stats?.calls_waiting;
    document.title = waiting ? `(${waiting}) Call center` : "Call center";
  });
  createApp(App).mount("#app");
  loadConfig();
  connect();
})();
