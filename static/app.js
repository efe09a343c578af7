/* Supervisor dashboard: a live view of the call center over the /callcenter WebSocket.
 *
 * Vue 3's global build, used with render functions only: no runtime template
 * compilation, so the page runs under a Content-Security-Policy without
 * 'unsafe-eval' or inline scripts. Vue escapes every text it renders.
 */
(function () {
  "use strict";

  const { createApp, reactive, h, watchEffect } = Vue;
  const { MAX_REASON, cleanReason, dur } = CallcenterLive; // live.js

  // Shown when the server sends no CONFIG.pause_reasons (an older server).
  const DEFAULT_PAUSE_REASONS = ["Break", "Lunch", "Training", "After call work", "Meeting", "Other"];
  // Device states (QueueMember Status) in which the queue cannot ring the agent's phone.
  const PHONE_DOWN = new Set(["UNAVAILABLE", "INVALID"]);
  const MUTE_KEY = "callcenter.alerts.muted"; // alerts' sound toggle, in localStorage (before `state`)

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
    config: { sla: 10, sla_target: 80, pause_reasons: DEFAULT_PAUSE_REASONS, pause_free_text: true },
    skew: 0, // server clock minus ours, seconds
    now: Date.now() / 1000,
    errors: [],
    pauseFor: null, // agent whose pause dialog is open
    pauseText: "",
    user: null, // {name, role, commands: all|own|none, agent?, queues?} from config.json
    // Alerts (issue 13): thresholds from CONFIG.alerts, the mute toggle, beeps played.
    alerts: null,
    muted: loadMuted(),
    beeps: 0,
    view: "standard", // "wall": the compact wallboard (?view=wall)
    scope: null, // queue filter: array of queue names, or null for all queues
    scopeOpen: false, // the queue filter's menu is open
    grid: { w: 0, h: 0 }, // the wall's agent grid box, for sizing its tiles
    health: null, // the server's HEALTH: PBX link and Redis (null: a server that sends none)
  });

  // ---- server connection (live.js) -----------------------------------------

  const server = CallcenterLive.link(state, {
    loginUrl: "login",
    onConfig(c) {
      if (typeof c.sla === "number") state.config.sla = c.sla;
      if (typeof c.sla_target === "number") state.config.sla_target = c.sla_target;
    },
    onSnapshot: takeSnapshot,
    onObjects: (objects) => objects.forEach(apply),
  });
  const { send, showError, dismissError, logout } = server;

  // The answer to HELLO replaces everything the page knew.
  function takeSnapshot(objects, lead) {
    for (const o of objects.splice(0, lead)) apply(o);
    const agents = {};
    const calls = {};
    const connects = {};
    for (const o of objects) {
      if (o.type === "AGENT" && o.status !== "LOGGEDOUT") agents[o.agentid] = noteRinging(o, state.agents[o.agentid]);
      else if (o.type === "CALL" && o.status !== "HANGUP" && o.status !== "ABANDON") calls[o.id] = o;
      else if (o.type === "CONNECT" && o.status !== "HANGUP") connects[o.id] = o;
      else if (o.type === "HEALTH") applyHealth(o);
    }
    state.stats = objects[0];
    state.agents = agents;
    state.calls = calls;
    state.connects = connects;
  }

  function apply(o) {
    switch (o.type) {
      case "STATS":
        state.stats = o;
        break;
      case "AGENT":
        if (o.status === "LOGGEDOUT") delete state.agents[o.agentid];
        else state.agents[o.agentid] = noteRinging(o, state.agents[o.agentid]);
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
      case "CONFIG":
        applyConfig(o);
        break;
      case "HEALTH":
        applyHealth(o);
        break;
      default:
        break;
    }
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

  function openPause(agentid) {
    state.pauseFor = agentid;
    state.pauseText = "";
  }

  function closePause() {
    state.pauseFor = null;
    state.pauseText = "";
  }

  // ---- issue 15: CONFIG, view and queue filter -------------------------------

  const SCOPE_KEY = "callcenter.queues"; // localStorage: this browser's queue filter

  // CONFIG (docs/protocol.md): pause reasons and whether free text is allowed.
  function applyConfig(o) {
    if (Array.isArray(o.pause_reasons)) {
      const seen = new Set();
      const reasons = [];
      for (const r of o.pause_reasons) {
        const c = cleanReason(r);
        if (c && !seen.has(c.toLowerCase())) {
          seen.add(c.toLowerCase());
          reasons.push(c);
        }
      }
      state.config.pause_reasons = reasons;
    }
    if (typeof o.pause_free_text === "boolean") state.config.pause_free_text = o.pause_free_text;
    if (o.alerts && typeof o.alerts === "object") state.config.alerts = o.alerts;
    applyAlerts(o); // issue 13: the --alert-* thresholds
  }

  function parseQueues(text) {
    const names = String(text || "").split(",").map((q) => q.trim()).filter(Boolean);
    return names.length ? [...new Set(names)].sort() : null;
  }

  // ?view=wall and ?queues=a,b; without ?queues the browser's saved choice.
  function loadSettings() {
    const params = new URLSearchParams(location.search);
    state.view = params.get("view") === "wall" ? "wall" : "standard";
    let scope = params.has("queues") ? parseQueues(params.get("queues")) : null;
    if (!params.has("queues")) {
      try {
        scope = parseQueues(localStorage.getItem(SCOPE_KEY));
      } catch (e) {
        scope = null; // storage disabled: no saved choice
      }
    }
    state.scope = scope;
  }

  function setScope(names) {
    state.scope = names && names.length ? [...new Set(names)].sort() : null;
    try {
      if (state.scope) localStorage.setItem(SCOPE_KEY, state.scope.join(","));
      else localStorage.removeItem(SCOPE_KEY);
    } catch (e) {
      // storage disabled: the choice lasts as long as the page
    }
    setParam("queues", state.scope ? state.scope.join(",") : null);
  }

  // The address shows the current choice, so it can be bookmarked on a wall.
  function setParam(name, value) {
    const params = new URLSearchParams(location.search);
    if (value) params.set(name, value);
    else params.delete(name);
    const q = params.toString();
    history.replaceState(null, "", q ? `?${q}` : location.pathname);
  }

  function setView(view) {
    state.view = view;
    setParam("view", view === "wall" ? "wall" : null);
  }

  function toggleScope(name) {
    const all = knownQueues();
    const cur = new Set(state.scope || all);
    if (cur.has(name)) cur.delete(name);
    else cur.add(name);
    setScope(cur.size === all.length && all.every((q) => cur.has(q)) ? null : [...cur]);
  }

  // Every queue the page has heard of: STATS, agents, calls.
  function knownQueues() {
    const names = new Set(Object.keys(state.stats?.queues || {}));
    for (const a of Object.values(state.agents)) for (const q of agentQueues(a)) names.add(q);
    for (const c of Object.values(state.calls)) if (c.queue) names.add(c.queue);
    return [...names].sort();
  }

  function agentQueues(a) {
    if (Array.isArray(a.queues)) return a.queues.map(String);
    return String(a.queue || "").split(",").filter(Boolean);
  }

  function queueInScope(q) {
    return !state.scope || state.scope.includes(q);
  }

  function agentInScope(a) {
    return !state.scope || agentQueues(a).some(queueInScope);
  }

  // Keys of STATS that add up over queues, and means weighted by their counts:
  // the rule the server uses for scoped supervisors (callcenter/auth/roles.py).
  const SUMMED = ["calls_received", "calls_answered", "calls_abandoned", "calls_timeout",
    "agents_online", "calls_online", "connections_online", "calls_waiting",
    "agents_available", "agents_loggedin"];
  const WEIGHTED = {
    average_queue_time: ["calls_answered"],
    average_handle_time: ["calls_answered"],
    average_abandoned_time: ["calls_abandoned"],
    sla: ["calls_answered"],
    sla_with_abandoned: ["calls_answered", "calls_abandoned"],
  };

  // The STATS the page shows: the server's, or re-totalled over the filter's queues.
  function scopedStats() {
    const s = state.stats;
    if (!s || !state.scope) return s || {};
    const perQueue = {};
    for (const [name, q] of Object.entries(s.queues || {})) if (queueInScope(name)) perQueue[name] = q || {};
    const qs = Object.values(perQueue);
    const out = { type: "STATS", day: s.day, queues: perQueue };
    const n = (q, k) => Number(q[k]) || 0;
    for (const k of SUMMED) if (k in s || qs.some((q) => k in q)) out[k] = qs.reduce((t, q) => t + n(q, k), 0);
    out.longest_wait = qs.reduce((m, q) => Math.max(m, n(q, "longest_wait")), 0);
    for (const [k, weights] of Object.entries(WEIGHTED)) {
      if (!(k in s) && !qs.some((q) => k in q)) continue;
      let total = 0;
      let weight = 0;
      for (const q of qs) {
        const w = weights.reduce((t, wk) => t + n(q, wk), 0);
        total += n(q, k) * w;
        weight += w;
      }
      const mean = weight ? total / weight : 0;
      out[k] = k.startsWith("sla") ? Math.round(mean * 100) / 100 : Math.floor(mean + 0.5);
    }
    if ("abandon_rate" in s) {
      out.abandon_rate = out.calls_received ? Math.round((10000 * out.calls_abandoned) / out.calls_received) / 100 : 0;
    }
    return out;
  }

  function scopeControl() {
    const all = knownQueues();
    const chosen = state.scope;
    const label = chosen ? (chosen.length === 1 ? chosen[0] : `${chosen.length} of ${all.length} queues`) : "All queues";
    return h("div", { class: "scope", "data-role": "scope" }, [
      h("button", {
        type: "button", class: "btn btn-sm btn-outline-info scope-btn", "data-action": "scope",
        "aria-expanded": state.scopeOpen ? "true" : "false", title: chosen ? chosen.join(", ") : "Showing every queue",
        onClick: () => { state.scopeOpen = !state.scopeOpen; },
      }, `Queues: ${label}`),
      state.scopeOpen ? h("div", { class: "scope-menu shadow", "data-role": "scope-menu" }, [
        h("button", { type: "button", class: "btn btn-sm btn-outline-secondary w-100 mb-2", "data-action": "scope-all", onClick: () => setScope(null) }, "All queues"),
        ...all.map((q) => h("label", { class: "scope-item" }, [
          h("input", { type: "checkbox", class: "form-check-input me-2", "data-queue-choice": q, checked: queueInScope(q), onChange: () => toggleScope(q) }),
          q,
        ])),
      ]) : null,
    ]);
  }

  function viewToggle() {
    const wall = state.view === "wall";
    return h("button", { type: "button", class: "btn btn-sm btn-outline-secondary", "data-action": "view", onClick: () => setView(wall ? "standard" : "wall") }, wall ? "Standard view" : "Wall view");
  }

  // ---- issue 15: what an agent is doing now ----------------------------------

  // When a ring began: AGENT has the ringing call id but not its start.
  function noteRinging(o, prev) {
    if (o.ringing) {
      o._ringAt = prev && prev.ringing === o.ringing && prev._ringAt ? prev._ringAt : state.now;
    }
    return o;
  }

  const LONG_PAUSE_MIN = 15; // minutes, unless CONFIG.alerts.pause_minutes says otherwise

  function longPause(a) {
    const limit = pauseLimit(a); // --alert-pause-minutes for its reason (issue 13), if set
    if (limit !== null) return elapsed(a.time) > limit;
    const m = Number(state.config.alerts?.pause_minutes) || LONG_PAUSE_MIN;
    return a.status === "PAUSED" && elapsed(a.time) >= m * 60;
  }

  // The state shown for an agent: the protocol's status refined by ringing,
  // wrap-up and a pause pending for the end of the call.
  // key: CSS and sort key; label; sub: text after it; secs: the timer; down: counts down.
  function activity(a) {
    const reason = a.reason || "";
    if (a.ringing && a.status !== "INCALL") {
      return { key: "ringing", label: "Ringing", secs: elapsed(a._ringAt || a.time) };
    }
    if (a.status === "INCALL") {
      if (a.paused === true) {
        return { key: "pending", label: "In call", sub: reason ? `pause next: ${reason}` : "pause next", secs: elapsed(a.time) };
      }
      return { key: "incall", label: "In call", secs: elapsed(a.time) };
    }
    const until = Number(a.wrapup_until) || 0;
    if (until > state.now && (a.status === "AVAIL" || a.status === "LOGGEDIN")) {
      return { key: "wrapup", label: "Wrap-up", secs: Math.ceil(until - state.now), down: true };
    }
    if (a.status === "PAUSED") {
      return { key: longPause(a) ? "longpause" : "paused", label: "Paused", sub: reason, secs: elapsed(a.time) };
    }
    const [label, cls] = AGENT_STATUS[a.status] || [a.status, "other"];
    return { key: cls, label, secs: elapsed(a.time) };
  }

  // Talk time ticks during a call: the day's finished talk plus this call so far.
  function liveTalk(a) {
    if (a.talk_time === undefined || a.talk_time === null) return null;
    return Number(a.talk_time) + (a.status === "INCALL" ? elapsed(a.time) || 0 : 0);
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

  // Per queue: agents available / logged in, from STATS or counted here.
  function queueAgents(name, q) {
    if (q && typeof q.agents_available === "number" && typeof q.agents_loggedin === "number") {
      return [q.agents_available, q.agents_loggedin];
    }
    let avail = 0;
    let total = 0;
    for (const a of Object.values(state.agents)) {
      if (!agentQueues(a).includes(name)) continue;
      total += 1;
      if (a.status === "AVAIL" && !a.ringing) avail += 1;
    }
    return [avail, total];
  }

  // Position in its queue: the server's, else the order of arrival.
  function callPosition(c, calls) {
    if (Number.isInteger(c.position) && c.position > 0) return c.position;
    if (c.status !== "QUEUED") return null;
    return calls.filter((o) => o.status === "QUEUED" && o.queue === c.queue).indexOf(c) + 1;
  }

  function callerCell(c) {
    const name = c.callername && c.callername !== c.callerid ? c.callername : "";
    return [
      name ? h("span", { class: "caller-name", "data-role": "callername" }, name) : null,
      name ? " " : null,
      h("span", { class: name ? "caller-num" : null }, c.callerid || "unknown"),
      c.status === "NA" ? h("span", { class: "badge text-bg-secondary ms-2" }, "IVR") : null,
    ];
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

  // ---- alerts (issue 13: --alert-* thresholds, CONFIG.alerts) ------------------

  function loadMuted() {
    try {
      return localStorage.getItem(MUTE_KEY) === "1";
    } catch (e) {
      return false;
    }
  }

  function toggleMute() {
    state.muted = !state.muted;
    try {
      localStorage.setItem(MUTE_KEY, state.muted ? "1" : "0");
    } catch (e) {
      /* private mode: the toggle still holds for this page */
    }
  }

  function positive(x) {
    return typeof x === "number" && Number.isFinite(x) && x > 0 ? x : null;
  }

  function applyAlerts(o) {
    const a = o && typeof o.alerts === "object" && o.alerts ? o.alerts : {};
    const pm = {};
    if (a.pause_minutes && typeof a.pause_minutes === "object") {
      for (const [reason, m] of Object.entries(a.pause_minutes)) if (positive(m)) pm[reason] = m;
    }
    state.alerts = { waiting: positive(a.waiting), longest_wait: positive(a.longest_wait), sla: positive(a.sla), pause_minutes: pm };
  }

  function pauseLimit(a) {
    const pm = state.alerts?.pause_minutes;
    if (!pm || a.status !== "PAUSED") return null;
    const m = pm[a.reason || ""] ?? pm["*"];
    return m ? m * 60 : null;
  }

  function pauseTooLong(a) {
    const limit = pauseLimit(a);
    const t = elapsed(a.time);
    return limit !== null && t !== null && t > limit;
  }

  // Every threshold crossed now: {key, kind, queue?, agent?, text}.
  function currentAlerts() {
    const al = state.alerts;
    if (!al || !live()) return []; // frozen figures (PBX down, syncing) raise no alert
    const out = [];
    const queues = state.stats?.queues || {};
    for (const name of Object.keys(queues).filter(queueInScope).sort()) {
      const q = queues[name] || {};
      if (al.waiting !== null && (q.calls_waiting || 0) > al.waiting) {
        out.push({ key: `waiting:${name}`, kind: "waiting", queue: name, text: `${name}: ${q.calls_waiting} calls waiting (alert above ${al.waiting})` });
      }
      const lw = q.calls_waiting ? longestWait(name) : 0;
      if (al.longest_wait !== null && lw > al.longest_wait) {
        out.push({ key: `longest_wait:${name}`, kind: "longest_wait", queue: name, text: `${name}: a caller has waited ${dur(lw)} (alert above ${dur(al.longest_wait)})` });
      }
      if (al.sla !== null && q.calls_answered && q.sla < al.sla) {
        out.push({ key: `sla:${name}`, kind: "sla", queue: name, text: `${name}: SLA ${pct(q.sla)} below ${al.sla}%` });
      }
    }
    for (const a of agentsSorted()) {
      if (pauseTooLong(a)) {
        out.push({ key: `pause:${a.agentid}`, kind: "pause", agent: a.agentid, text: `${agentName(a)} paused (${a.reason || "no reason"}) for ${dur(elapsed(a.time))}` });
      }
    }
    return out;
  }

  const TILE_ALERT = { calls_waiting: "waiting", longest_wait: "longest_wait", sla: "sla" };

  function tileAlerted(key) {
    const kind = TILE_ALERT[key];
    return kind ? currentAlerts().some((x) => x.kind === kind) : false;
  }

  function queueAlerted(name) {
    return currentAlerts().some((x) => x.queue === name);
  }

  let audio = null;

  function beep() {
    state.beeps += 1; // counted when asked: the observable part of "a beep was scheduled"
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      audio = audio || new Ctx();
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.15;
      osc.connect(gain).connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.25);
    } catch (e) {
      /* no audio device: the banner still shows */
    }
  }

  function alertsBanner() {
    const list = currentAlerts();
    if (!state.alerts) return null;
    return h("div", { id: "alerts", class: ["alerts-bar", list.length ? "alerts-on" : "alerts-off"], role: "alert", "data-alerts": String(list.length), "data-muted": state.muted ? "1" : "0", "data-beeps": String(state.beeps) }, [
      list.length ? h("ul", { class: "alerts-list" }, list.map((x) => h("li", { key: x.key, "data-alert-key": x.key }, x.text))) : null,
      h("button", { type: "button", class: "btn btn-sm btn-outline-light alerts-mute", "data-action": "mute", "aria-pressed": state.muted ? "true" : "false", onClick: toggleMute }, state.muted ? "Sound off" : "Sound on"),
    ]);
  }

  // ---- formatting ----------------------------------------------------------

  function elapsed(t) {
    return CallcenterLive.elapsed(t, state.now);
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
      .filter((c) => (c.status === "QUEUED" || c.status === "NA") && queueInScope(c.queue))
      .sort((a, b) => (a.time || 0) - (b.time || 0) || String(a.id).localeCompare(String(b.id)));
  }

  function agentsSorted() {
    return Object.values(state.agents).filter(agentInScope).sort(
      (a, b) =>
        (AGENT_ORDER[a.status] ?? 9) - (AGENT_ORDER[b.status] ?? 9) ||
        String(a.agentid).localeCompare(String(b.agentid), undefined, { numeric: true })
    );
  }

  function connectsSorted() {
    return Object.values(state.connects)
      .filter((c) => queueInScope(c.queue))
      .sort((a, b) => (a.time || 0) - (b.time || 0));
  }

  // Longest wait ticks live from the queued calls; STATS' figure is its fallback.
  function longestWait(queue) {
    let oldest = null;
    for (const c of Object.values(state.calls)) {
      if (c.status !== "QUEUED" || (queue ? c.queue !== queue : !queueInScope(c.queue)) || !c.time) continue;
      if (oldest === null || c.time < oldest) oldest = c.time;
    }
    if (oldest !== null) return elapsed(oldest);
    const s = queue ? state.stats?.queues?.[queue] : scopedStats();
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
      label = `Disconnected · retry in ${CallcenterLive.retryIn(state)} s`;
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
        scopeControl(),
        viewToggle(),
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
    const alerted = tileAlerted(key);
    return h("div", { class: big ? "col-6 col-lg-3" : "col-6 col-sm-4 col-md-3 col-xl" }, [
      h("div", { class: ["kpi", big ? "kpi-big" : "kpi-small", `lvl-${alerted ? "bad" : level || "neutral"}`, alerted ? "kpi-alert" : null], "data-kpi": key, "data-alert": alerted ? "on" : null }, [
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
    const s = scopedStats();
    const waiting = s.calls_waiting ?? waitingCalls().filter((c) => c.status === "QUEUED").length;
    const longest = longestWait(null);
    const agents = Object.values(state.agents).filter(agentInScope);
    const avail = agents.filter((a) => activity(a).key === "avail").length;
    const online = state.scope ? agents.length : s.agents_online ?? agents.length;
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
  const SM = "d-none d-sm-table-cell";

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
        h("td", { class: "text-end pos", "data-role": "position" }, num(callPosition(c, calls))),
        h("td", { class: "fw-semibold caller" }, callerCell(c)),
        h("td", { class: `${MD} text-nowrap` }, c.queue || "—"),
        h("td", { class: ["text-end", "tick", c.status === "QUEUED" ? `txt-${waitLevel(w)}` : null] }, dur(w)),
      ]);
    });
    return card("Waiting calls", calls.length, [table([["#", "text-end"], ["Caller"], ["Queue", MD], ["Waiting", "text-end"]], rows, "No calls waiting")], "panel-calls");
  }

  function queuesCard() {
    const queues = state.stats?.queues || {};
    const names = Object.keys(queues).filter(queueInScope).sort();
    const rows = names.map((name) => {
      const q = queues[name] || {};
      const lw = longestWait(name);
      const [qa, ql] = queueAgents(name, q);
      const qAlert = queueAlerted(name);
      return h("tr", { key: name, "data-queue": name, class: qAlert ? "row-alert" : null, "data-alert": qAlert ? "on" : null }, [
        h("td", { class: "fw-semibold text-nowrap" }, name),
        h("td", { class: ["text-end", q.calls_waiting ? "txt-warn fw-bold" : null] }, num(q.calls_waiting)),
        h("td", { class: ["text-end", "tick", SM, q.calls_waiting ? `txt-${waitLevel(lw)}` : null] }, q.calls_waiting ? dur(lw) : "—"),
        h("td", { class: ["text-end", "text-nowrap", q.calls_waiting && !qa ? "txt-bad" : null], "data-role": "queue-agents", title: "available / logged in" }, `${qa} / ${ql}`),
        h("td", { class: `text-end ${MD}` }, num(q.calls_received)),
        h("td", { class: `text-end ${MD}` }, num(q.calls_answered)),
        h("td", { class: `text-end ${MD}` }, num(q.calls_abandoned)),
        h("td", { class: ["text-end", `txt-${slaLevel(q.sla, q.calls_answered)}`] }, pct(given(q.sla, q.calls_answered))),
        h("td", { class: `text-end ${XXL}` }, dur(given(q.average_queue_time, q.calls_answered))),
        h("td", { class: `text-end ${XXL}` }, dur(given(q.average_handle_time, q.calls_answered))),
      ]);
    });
    const head = [["Queue"], ["Waiting", "text-end"], ["Longest", `text-end ${SM}`], ["Agents", "text-end"], ["Recv.", `text-end ${MD}`], ["Answ.", `text-end ${MD}`], ["Aband.", `text-end ${MD}`], ["SLA", "text-end"], ["Avg wait", `text-end ${XXL}`], ["Avg handle", `text-end ${XXL}`]];
    return card("Queues", names.length, [table(head, rows, "No queue figures yet")], "panel-queues");
  }

  function agentsCard() {
    const agents = agentsSorted();
    const rows = agents.map((a) => {
      const [, cls] = AGENT_STATUS[a.status] || [a.status, "other"];
      const act = activity(a);
      const talk = liveTalk(a);
      const aAlert = pauseTooLong(a);
      return h("tr", { key: a.agentid, "data-agent": a.agentid, "data-status": a.status, "data-activity": act.key, class: [`agent-${cls}`, aAlert ? "row-alert" : null], "data-alert": aAlert ? "pause" : null }, [
        h("td", { class: "agent-cell" }, [
          h("span", { class: "agent-name" }, agentName(a)),
          a.name ? " " : null,
          a.name ? h("span", { class: "agent-id" }, a.agentid) : null,
          a.team ? " " : null,
          a.team ? h("span", { class: "agent-team" }, a.team) : null,
        ]),
        h("td", { class: "status-cell" }, [
          h("span", { class: ["status", `status-${act.key}`], "data-role": "status" }, act.label),
          act.sub ? h("span", { class: "reason", "data-role": "reason", title: act.sub }, act.key === "pending" ? ` · ${act.sub}` : act.sub) : null,
          PHONE_DOWN.has(a.device)
            ? h("span", { class: "badge text-bg-danger ms-2", "data-role": "device", title: `Phone ${a.device}` }, "phone offline")
            : null,
        ]),
        h("td", { class: ["text-end", "tick", act.down ? "countdown" : null], "data-role": "since" }, dur(act.secs)),
        h("td", { class: `queue-col ${XXL}` }, a.queue || "—"),
        h("td", { class: `text-end ${XXL}`, "data-role": "login-time" }, a.login_time ? clock(a.login_time) : "—"),
        h("td", { class: `text-end ${XXL}`, "data-role": "last-call" }, a.last_call ? clock(a.last_call) : "—"),
        h("td", { class: `text-end ${MD}`, "data-role": "calls-taken" }, num(a.calls_taken ?? null)),
        h("td", { class: `text-end tick ${MD}`, "data-role": "talk-time" }, talk === null ? "—" : dur(talk)),
        h("td", { class: "text-end actions" }, !mayCommand(a.agentid) ? [] : [
          h("button", { type: "button", class: "btn btn-sm btn-outline-warning", "data-action": "pause", disabled: !live(), onClick: () => openPause(a.agentid) }, "Pause"),
          h("button", { type: "button", class: "btn btn-sm btn-outline-success", "data-action": "avail", disabled: !live() || a.status === "AVAIL" || (a.status === "INCALL" && a.paused !== true), onClick: () => avail(a.agentid) }, "Available"),
        ]),
      ]);
    });
    const head = [["Agent"], ["Status"], ["Time", "text-end"], ["Queue", XXL], ["Login", `text-end ${XXL}`], ["Last call", `text-end ${XXL}`], ["Calls", `text-end ${MD}`], ["Talk", `text-end ${MD}`], ["", "text-end"]];
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
              h("div", { class: "reason-grid" }, [
                ...state.config.pause_reasons.map((r) =>
                  h("button", { type: "button", class: "btn btn-outline-warning", "data-reason": r, onClick: () => pause(id, r) }, r)
                ),
                // Without free text an empty reason cannot be typed: a pause without one.
                state.config.pause_free_text ? null
                  : h("button", { type: "button", class: "btn btn-outline-secondary", "data-reason": "", onClick: () => pause(id, "") }, "No reason"),
              ]),
              !state.config.pause_free_text ? null : h("form", { class: "mt-3", onSubmit: (e) => { e.preventDefault(); pause(id, state.pauseText); } }, [
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

  // ---- issue 15: wall view (?view=wall) --------------------------------------

  // Attention first: offline phones, long pauses, rings, pending pauses, wrap-up...
  const WALL_RANK = { offline: 0, longpause: 1, ringing: 2, pending: 3, wrapup: 4, paused: 5, loggedin: 6, incall: 7, avail: 8 };
  const WALL_GAP = 4; // px between agent tiles (matches .wall-agents gap)
  const TILE_MIN_RATIO = 2.6;
  const WALL_QUEUES_PER_ROW = 6; // more queues: rows of equal length // a tile at least this many times wider than high

  function wallAgents() {
    return Object.values(state.agents).filter(agentInScope).map((a) => {
      const act = activity(a);
      const rank = PHONE_DOWN.has(a.device) ? WALL_RANK.offline : WALL_RANK[act.key] ?? 9;
      return { a, act, rank };
    }).sort((x, y) =>
      x.rank - y.rank || (y.act.secs || 0) - (x.act.secs || 0) ||
      String(x.a.agentid).localeCompare(String(y.a.agentid), undefined, { numeric: true }));
  }

  // Columns, row height and font size that fit n tiles in the grid's box.
  function gridLayout(n, width, height) {
    let best = { cols: 1, h: 0, font: 0 };
    if (!n || !width || !height) return best;
    for (let cols = 1; cols <= n; cols += 1) {
      const rows = Math.ceil(n / cols);
      const w = (width - WALL_GAP * (cols - 1)) / cols;
      const h = Math.min((height - WALL_GAP * (rows - 1)) / rows, w / TILE_MIN_RATIO, 96);
      const font = Math.min(h / 2.75, w / 16, 24);
      if (font > best.font) best = { cols, h: Math.floor(h), font: Math.floor(font * 10) / 10 };
    }
    return best;
  }

  let gridObserver = null;
  function watchGrid(el) {
    if (!el || typeof ResizeObserver === "undefined") return;
    if (gridObserver && gridObserver.el === el) return;
    if (gridObserver) gridObserver.disconnect();
    gridObserver = new ResizeObserver(() => {
      const w = el.clientWidth;
      const hgt = el.clientHeight;
      if (w !== state.grid.w || hgt !== state.grid.h) state.grid = { w, h: hgt };
    });
    gridObserver.el = el;
    gridObserver.observe(el);
  }

  function wallTile(key, label, value, level) {
    return h("div", { class: ["wtile", `lvl-${level || "neutral"}`], "data-kpi": key }, [
      h("div", { class: "wtile-label" }, label),
      h("div", { class: "wtile-value" }, value),
    ]);
  }

  function wallKpis() {
    const s = scopedStats();
    const waiting = s.calls_waiting ?? waitingCalls().filter((c) => c.status === "QUEUED").length;
    const longest = longestWait(null);
    const agents = Object.values(state.agents).filter(agentInScope);
    const avail = agents.filter((a) => activity(a).key === "avail").length;
    const x = syncing() ? () => "syncing" : (v) => v;
    return h("div", { class: "wall-kpis" }, [
      wallTile("calls_waiting", "Waiting", x(num(waiting)), waiting ? (waiting > avail ? "bad" : "warn") : "good"),
      wallTile("longest_wait", "Longest wait", x(dur(longest)), waiting ? waitLevel(longest) : "good"),
      wallTile("sla", "Service level", x(pct(given(s.sla, s.calls_answered))), slaLevel(s.sla, s.calls_answered)),
      wallTile("agents_online", "Available", x(`${avail} / ${agents.length}`), avail ? "good" : agents.length ? "warn" : "neutral"),
      wallTile("calls_received", "Received", x(num(s.calls_received))),
      wallTile("calls_answered", "Answered", x(num(s.calls_answered))),
      wallTile("calls_abandoned", "Abandoned", x(num(s.calls_abandoned)), s.calls_abandoned ? "warn" : "neutral"),
      wallTile("average_queue_time", "Avg wait", x(dur(given(s.average_queue_time, s.calls_answered)))),
    ]);
  }

  function wallQueues() {
    const queues = state.stats?.queues || {};
    const list = Object.keys(queues).filter(queueInScope).map((name) => {
      const q = queues[name] || {};
      return { name, q, waiting: Number(q.calls_waiting) || 0, longest: q.calls_waiting ? longestWait(name) || 0 : 0 };
    }).sort((x, y) => y.waiting - x.waiting || y.longest - x.longest || x.name.localeCompare(y.name));
    const perRow = Math.ceil(list.length / Math.ceil(list.length / WALL_QUEUES_PER_ROW)) || 1;
    return h("div", { class: "wall-queues", style: { "--qcols": perRow } }, list.map(({ name, q, waiting, longest }) => {
      const [qa, ql] = queueAgents(name, q);
      const level = waiting ? (qa ? waitLevel(longest) : "bad") : "neutral";
      const qAlert = queueAlerted(name);
      return h("div", { key: name, class: ["qtile", `lvl-${qAlert ? "bad" : level}`, qAlert ? "qtile-alert" : null], "data-queue": name, "data-alert": qAlert ? "on" : null }, [
        h("div", { class: "qtile-name", title: name }, name),
        h("div", { class: "qtile-figs" }, [
          h("span", { class: ["qtile-wait", waiting ? `txt-${level}` : null], title: "calls waiting" }, `${waiting} waiting`),
          h("span", { class: "tick", title: "longest wait" }, waiting ? dur(longest) : "—"),
        ]),
        h("div", { class: "qtile-figs" }, [
          h("span", { class: `txt-${slaLevel(q.sla, q.calls_answered)}`, title: "service level" }, `SLA ${pct(given(q.sla, q.calls_answered))}`),
          h("span", { "data-role": "queue-agents", title: "agents available / logged in" }, `${qa} / ${ql} agents`),
        ]),
      ]);
    }));
  }

  function wallGrid() {
    const items = wallAgents();
    const g = gridLayout(items.length, state.grid.w, state.grid.h);
    const style = {
      gridTemplateColumns: `repeat(${g.cols}, minmax(0, 1fr))`,
      gridAutoRows: g.h ? `${g.h}px` : null,
      fontSize: g.font ? `${g.font}px` : null,
    };
    return h("div", { class: "wall-agents", ref: watchGrid, style }, items.map(({ a, act }) =>
      h("div", {
        key: a.agentid, class: ["atile", `act-${act.key}`, PHONE_DOWN.has(a.device) ? "act-offline" : null],
        "data-agent": a.agentid, "data-status": a.status, "data-activity": act.key, "data-alert": pauseTooLong(a) ? "pause" : null,
        title: `${agentName(a)} (${a.agentid})${act.sub ? ` · ${act.sub}` : ""}`,
      }, [
        h("div", { class: "atile-top" }, [
          h("span", { class: "atile-name" }, agentName(a)),
          a.name ? " " : null,
          a.name ? h("span", { class: "atile-id" }, a.agentid) : null,
        ]),
        h("div", { class: "atile-bot" }, [
          h("span", { class: "atile-state", "data-role": "status" }, act.sub ? `${act.label} · ${act.sub}` : act.label),
          h("span", { class: "atile-time tick" }, dur(act.secs)),
        ]),
      ])
    ));
  }

  function wallView() {
    return h("div", { class: ["dash", "wall", live() ? null : "stale"], "data-live": live() ? "yes" : "no" }, [
      header(),
      healthBanners(),
      alertsBanner(),
      errorsView(),
      h("main", { class: "wall-main" }, [wallKpis(), wallQueues(), wallGrid()]),
      pauseDialog(),
    ]);
  }

  const App = {
    render() {
      if (state.view === "wall") return wallView();
      return h("div", { class: ["dash", live() ? null : "stale"], "data-live": live() ? "yes" : "no" }, [
        header(),
        healthBanners(),
        alertsBanner(),
        errorsView(),
        h("main", { class: "container-fluid px-3 px-xl-4 pb-4" }, [
          ...kpis(),
          h("div", { class: "row g-3" }, [
            h("div", { class: "col-12 col-xl-4 d-flex flex-column gap-3" }, [waitingCard(), connectsCard()]),
            h("div", { class: "col-12 col-xl-8 d-flex flex-column gap-3" }, [queuesCard(), agentsCard()]),
          ]),
        ]),
        pauseDialog(),
      ]);
    },
  };

  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && state.pauseFor !== null) closePause();
  });
  watchEffect(() => {
    const waiting = state.stats?.calls_waiting;
    document.title = waiting ? `(${waiting}) Call center` : "Call center";
  });
  loadSettings();
  // A new alert (one not shown a moment ago) beeps once, unless muted.
  let shownAlerts = new Set();
  watchEffect(() => {
    const keys = new Set(currentAlerts().map((x) => x.key));
    const fresh = [...keys].some((k) => !shownAlerts.has(k));
    shownAlerts = keys;
    if (fresh && !state.muted) beep();
  });
  createApp(App).mount("#app");
  server.start();
})();
