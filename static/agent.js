/* The agent's own page (/agent): its state and the time in it, Pause/Available
 * for itself, today's own figures, and the call in progress with its caller
 * and the CRM screen pop.
 *
 * Same WebSocket protocol as the dashboard (/callcenter).  A user with the
 * agent role is its own agent, and the server sends that view nothing but its
 * own AGENT and CONNECT objects (and the STATS); any other user (an admin, or
 * everyone on an open loopback service) names the agent with ?agent=ID and
 * gets a chooser without it.  Commands are checked on the server either way.
 * Vue render functions only, as app.js: no template compilation, strict CSP.
 */
(function () {
  "use strict";

  const { createApp, reactive, h, watchEffect } = Vue;
  const { MAX_REASON, cleanReason, dur } = CallcenterLive; // live.js

  // Used until the server's CONFIG object names the configured reasons.
  const DEFAULT_REASONS = ["Break", "Lunch", "Training", "After call work", "Meeting", "Other"];
  const STATUS = {
    AVAIL: ["Available", "avail"],
    INCALL: ["In call", "incall"],
    PAUSED: ["Paused", "paused"],
    LOGGEDIN: ["Logged in, not yet available", "loggedin"],
  };

  const state = reactive({
    conn: "connecting", // connecting | open | closed
    retryAt: 0,
    user: null, // {name, role, commands, agent?} from config.json
    wanted: new URLSearchParams(location.search).get("agent") || "",
    screenPop: { configured: false, auto: false },
    reasons: DEFAULT_REASONS,
    freeText: true,
    agents: {},
    connects: {},
    skew: 0,
    now: Date.now() / 1000,
    errors: [],
    pauseText: "",
    choosing: false, // the reason list is open
    pbxDown: null, // HEALTH's pbx when the link to the PBX is down, else null
  });

  // ---- which agent this page is about ------------------------------------

  function agentId() {
    const u = state.user;
    if (u && u.role === "agent") return String(u.agent || "");
    return state.wanted;
  }

  function me() {
    return state.agents[agentId()] || null;
  }

  function myConnect() {
    const id = agentId();
    for (const c of Object.values(state.connects)) {
      if (c.status !== "HANGUP" && String(c.agent?.agentid) === id) return c;
    }
    return null;
  }

  // ---- server connection (live.js) -----------------------------------------

  const popped = new Set(); // calls whose screen pop opened by itself already
  const server = CallcenterLive.link(state, {
    loginUrl: "login?then=agent",
    onConfig(c) {
      if (c.screen_pop && typeof c.screen_pop === "object") {
        state.screenPop = { configured: !!c.screen_pop.configured, auto: !!c.screen_pop.auto };
      }
    },
    // The HELLO answer replaces everything.
    onSnapshot(objects) {
      state.agents = {};
      state.connects = {};
      for (const o of objects) take(o, true);
    },
    onObjects: (objects) => objects.forEach((o) => take(o, false)),
  });
  const { send, showError, logout } = server;

  function take(o, fromSnapshot) {
    switch (o.type) {
      case "CONFIG":
        if (Array.isArray(o.pause_reasons) && o.pause_reasons.length) state.reasons = o.pause_reasons.map(String);
        if (typeof o.pause_free_text === "boolean") state.freeText = o.pause_free_text;
        break;
      case "AGENT":
        if (o.status === "LOGGEDOUT") delete state.agents[o.agentid];
        else state.agents[o.agentid] = o;
        break;
      case "CALL":
        if (o.status === "HANGUP" || o.status === "ABANDON") delete state.connects[o.id];
        break;
      case "CONNECT":
        if (o.status === "HANGUP") {
          delete state.connects[o.id];
          popped.delete(o.id);
        } else {
          state.connects[o.id] = o;
          if (!fromSnapshot) autoPop(o);
        }
        break;
      case "HEALTH": {
        // Only the PBX link matters here: without it nothing the agent sees is current.
        const pbx = o.pbx && typeof o.pbx === "object" ? o.pbx : {};
        state.pbxDown = pbx.up === false ? { since: Number(pbx.since) || 0, error: String(pbx.error || "") } : null;
        break;
      }
      case "ERROR":
        showError(o.message);
        break;
      default:
        break;
    }
  }

  // Opens the CRM by itself once per call, when the call connects while the
  // page is open (not for a call already running when it loads).
  function autoPop(c) {
    if (!state.screenPop.auto || !c.screen_pop || popped.has(c.id)) return;
    if (String(c.agent?.agentid) !== agentId()) return;
    popped.add(c.id);
    // With noopener the result is always null, so a blocked pop-up cannot be
    // told here: docs/integrations.md asks to allow pop-ups for the site.
    window.open(c.screen_pop, "_blank", "noopener,noreferrer");
  }

  function pause(reason) {
    const r = cleanReason(reason);
    send(r ? `PAUSE:${agentId()}:${r}` : `PAUSE:${agentId()}`);
    state.choosing = false;
    state.pauseText = "";
  }

  function avail() {
    send(`AVAIL:${agentId()}`);
  }

  // ---- formatting ----------------------------------------------------------

  function since(t) {
    return CallcenterLive.elapsed(t, state.now);
  }

  // Mean seconds rounded half up, as the server's KPIs (kpi._mean).
  function mean(total, n) {
    return n ? Math.floor(total / n + 0.5) : null;
  }

  // Today's pause seconds by reason, with the pause in progress ticking.
  function pauseTimes(a) {
    const out = Object.assign({}, a.pause_time || {});
    if (a.status === "PAUSED") {
      const r = a.reason || "";
      out[r] = (out[r] || 0) + (since(a.time) || 0);
    }
    return out;
  }

  // ---- rendering -----------------------------------------------------------

  function topbar() {
    const a = me();
    const u = state.user;
    const label = state.conn === "open" ? "Live" : state.conn === "connecting" ? "Connecting…"
      : `Disconnected · retry in ${CallcenterLive.retryIn(state)} s`;
    return h("header", { class: "topbar" }, [
      h("div", { class: "brand" }, [
        h("img", { src: "favicon.svg", alt: "", class: "brand-logo" }),
        h("span", a && a.name ? `${a.name} (${a.agentid})` : agentId() ? `Agent ${agentId()}` : "Agent page"),
      ]),
      h("div", { class: "topbar-meta" }, [
        h("span", { id: "conn", class: ["conn", `conn-${state.conn}`], "data-state": state.conn, role: "status" }, [h("span", { class: "conn-dot" }), label]),
        u && u.name !== "anonymous"
          ? h("span", { class: "who", "data-user": u.name, "data-role": u.role }, [
              h("span", { class: "fw-semibold" }, u.name),
              h("button", { type: "button", class: "btn btn-sm btn-outline-secondary", "data-action": "logout", onClick: logout }, "Log out"),
            ])
          : null,
      ]),
    ]);
  }

  function panel(title, body, extra) {
    return h("section", { class: ["card", "panel", extra] }, [
      h("div", { class: "card-header panel-header" }, [h("h2", title)]),
      h("div", { class: "card-body" }, body),
    ]);
  }

  function chooser() {
    const ids = Object.keys(state.agents).sort((x, y) => x.localeCompare(y, undefined, { numeric: true }));
    return panel("Whose page?", [
      h("p", { class: "text-secondary" }, "Open the page of one agent (the address then carries ?agent=ID):"),
      ids.length
        ? h("div", { class: "d-flex flex-wrap gap-2", "data-role": "chooser" }, ids.map((id) =>
            h("a", { class: "btn btn-outline-light", href: `?agent=${encodeURIComponent(id)}`, "data-agent-link": id }, state.agents[id].name ? `${state.agents[id].name} (${id})` : id)))
        : h("p", { class: "empty" }, "No agent logged in"),
    ], "panel-chooser");
  }

  function statePanel(a) {
    if (!a) {
      return panel("My state", [
        h("p", { class: "empty", "data-agent-status": "LOGGEDOUT" }, `Agent ${agentId()} is not logged in to any queue. Log in on your phone (feature code 011).`),
      ], "panel-state");
    }
    const [label, cls] = STATUS[a.status] || [a.status, "other"];
    const busy = state.conn !== "open" || state.pbxDown !== null;
    const paused = a.status === "PAUSED" || a.status === "LOGGEDIN";
    const pausing = a.status === "INCALL" && a.paused === true; // pause asked during the call
    return panel("My state", [
      h("div", { class: "agent-state", "data-agent-status": a.status }, [
        h("span", { class: ["status", "status-big", `status-${cls}`], "data-role": "status" }, label),
        h("span", { class: "tick state-time", "data-role": "since" }, dur(since(a.time))),
      ]),
      a.status === "PAUSED" ? h("div", { class: "mt-2" }, ["Reason: ", h("span", { "data-role": "reason" }, a.reason || "none given")]) : null,
      pausing ? h("div", { class: "mt-2 text-warning", "data-role": "pausing" }, `Paused after this call${a.reason ? ` (${a.reason})` : ""}`) : null,
      a.queue ? h("div", { class: "text-secondary mt-1" }, `Queues: ${(a.queues || [a.queue]).join(", ")}`) : null,
      h("div", { class: "agent-actions mt-3" }, [
        h("button", { type: "button", class: "btn btn-success", "data-action": "avail", disabled: busy || !paused, onClick: avail }, "Available"),
        h("button", { type: "button", class: "btn btn-outline-warning", "data-action": "pause", disabled: busy, onClick: () => { state.choosing = !state.choosing; } }, "Pause…"),
      ]),
      state.choosing ? reasonPicker() : null,
    ], "panel-state");
  }

  function reasonPicker() {
    return h("div", { class: "mt-3", "data-dialog": "pause" }, [
      h("div", { class: "reason-grid" }, state.reasons.map((r) =>
        h("button", { type: "button", class: "btn btn-outline-warning", "data-reason": r, onClick: () => pause(r) }, r))),
      state.freeText
        ? h("form", { class: "mt-2", onSubmit: (e) => { e.preventDefault(); pause(state.pauseText); } }, [
            h("div", { class: "input-group" }, [
              h("input", { id: "pause-text", class: "form-control", placeholder: "Other reason", maxlength: MAX_REASON, autocomplete: "off", value: state.pauseText, onInput: (e) => { state.pauseText = e.target.value; } }),
              h("button", { type: "submit", class: "btn btn-warning" }, "Pause"),
            ]),
          ])
        : null,
    ]);
  }

  function callPanel(a) {
    const c = myConnect();
    if (!c) {
      const ringing = a && a.ringing;
      return panel("Call", [h("p", { class: "empty", "data-role": "no-call" }, ringing ? "Your phone is ringing…" : "No call in progress")], "panel-call");
    }
    const call = c.call || {};
    const rows = [
      ["Caller", "callerid", call.callerid || "unknown"],
      ["Name", "callername", call.callername || "—"],
      ["Queue", "queue", c.queue || "—"],
      ["Waited", "hold", call.hold !== undefined ? dur(call.hold) : "—"],
      ["Talking", "talk", dur(since(c.time))],
    ];
    return panel("Call", [
      h("dl", { class: "call-facts", "data-call": c.id }, rows.flatMap(([k, role, v]) => [h("dt", k), h("dd", { "data-role": role, class: role === "callerid" ? "caller-number" : null }, v)])),
      c.screen_pop
        ? h("a", { class: "btn btn-primary", "data-action": "screen-pop", href: c.screen_pop, target: "_blank", rel: "noopener noreferrer" }, "Open in CRM")
        : null,
    ], "panel-call");
  }

  function todayPanel(a) {
    const calls = a ? a.calls_taken || 0 : 0;
    const talk = a ? a.talk_time || 0 : 0;
    const pauses = a ? pauseTimes(a) : {};
    const reasons = Object.keys(pauses).sort((x, y) => pauses[y] - pauses[x] || x.localeCompare(y));
    const fig = (key, label, value) => h("div", { class: "col-4" }, [
      h("div", { class: "kpi kpi-small", "data-figure": key }, [h("div", { class: "kpi-label" }, label), h("div", { class: "kpi-value" }, value)]),
    ]);
    return panel("Today", [
      h("div", { class: "row g-2" }, [
        fig("calls", "Calls", String(calls)),
        fig("talk_time", "Talk time", dur(talk)),
        fig("aht", "Avg handle", dur(mean(talk, calls))),
      ]),
      h("h3", { class: "h6 mt-3" }, "Pause time by reason"),
      reasons.length
        ? h("table", { class: "table table-sm mb-0" }, [h("tbody", reasons.map((r) =>
            h("tr", { key: r, "data-pause-reason": r }, [h("td", r || "no reason"), h("td", { class: "text-end tick" }, dur(pauses[r]))])))])
        : h("p", { class: "empty", "data-role": "no-pauses" }, "No pause today"),
    ], "panel-today");
  }

  function errorsView() {
    return h("div", { class: "toasts" }, state.errors.map((e) =>
      h("div", { key: e.id, class: "alert alert-danger shadow mb-2", role: "alert", "data-error": "" }, e.message)));
  }

  const App = {
    render() {
      const a = me();
      return h("div", { class: ["dash", "agent-page", state.conn === "open" ? null : "stale"] }, [
        topbar(),
        errorsView(),
        state.conn === "open" && state.pbxDown
          ? h("div", { id: "pbx-banner", class: "alert alert-danger mb-0 rounded-0", role: "alert", title: state.pbxDown.error || null },
              [h("strong", "No connection to the PBX"), ` since ${dur(since(state.pbxDown.since))} ago: what you see may be out of date, and Pause/Available cannot work.`])
          : null,
        h("main", { class: "container-fluid px-3 pb-4" }, !agentId() ? [chooser()] : [
          h("div", { class: "row g-3" }, [
            h("div", { class: "col-12 col-lg-6 d-flex flex-column gap-3" }, [statePanel(a), callPanel(a)]),
            h("div", { class: "col-12 col-lg-6" }, [todayPanel(a)]),
          ]),
        ]),
      ]);
    },
  };

  watchEffect(() => {
    const c = myConnect();
    document.title = c ? `☎ ${c.call?.callerid || "call"} · Agent` : "Agent · Call center";
  });
  createApp(App).mount("#agent-app");
  server.start();
})();
