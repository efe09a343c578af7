/* What the dashboard (app.js) and the agent page (agent.js) share: the
 * /callcenter WebSocket (HELLO, the snapshot, reconnecting with back-off),
 * config.json (the user, the server's clock), the error toasts' list, logging
 * out, a pause reason's cleaning and the time formats.
 *
 * Loaded before either page's script (a plain script, no module, as Vue's
 * global build): it defines the one global CallcenterLive and renders
 * nothing.  The page keeps its own state; `link` writes only the keys it
 * names below into it.
 */
(function () {
  "use strict";

  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 10000;
  const ERROR_SHOWN_MS = 8000;
  const SESSION_ENDED = 4401; // close code: logged out, expired or revoked
  const MAX_REASON = 64; // the server refuses longer reasons
  const SKEW_IGNORED = 1.5; // seconds of clock difference not worth correcting
  // Settings a newer server sends ahead of STATS in the HELLO answer.
  const SETTINGS_FIRST = new Set(["CONFIG", "HEALTH"]);

  // A frame's JSON objects, one a line; a line that is not JSON is skipped.
  function parseFrame(text) {
    const objects = [];
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      try {
        objects.push(JSON.parse(line));
      } catch (e) {
        console.warn("ignoring a line that is not JSON:", line);
      }
    }
    return objects;
  }

  // How many objects at the start of a frame are settings sent before STATS.
  function leadingSettings(objects) {
    let n = 0;
    while (n < objects.length && SETTINGS_FIRST.has(objects[n].type)) n += 1;
    return n;
  }

  // A reason as the server takes it: no control characters, at most MAX_REASON.
  function cleanReason(reason) {
    return String(reason || "")
      .replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, " ")
      .trim()
      .slice(0, MAX_REASON);
  }

  // Whole seconds since Unix time t at `now`; null without a t.
  function elapsed(t, now) {
    return t ? Math.max(0, Math.floor(now - t)) : null;
  }

  // Seconds as m:ss or h:mm:ss; "—" for none.
  function dur(s) {
    if (s === null || s === undefined || Number.isNaN(Number(s))) return "—";
    s = Math.max(0, Math.floor(Number(s)));
    const hh = Math.floor(s / 3600);
    const mm = Math.floor((s % 3600) / 60);
    const ss = String(s % 60).padStart(2, "0");
    return hh ? `${hh}:${String(mm).padStart(2, "0")}:${ss}` : `${mm}:${ss}`;
  }

  // Seconds until the next reconnect attempt, for "retry in N s".
  function retryIn(state) {
    return Math.max(0, Math.ceil((state.retryAt - (state.now - state.skew) * 1000) / 1000));
  }

  /* The page's link to the server.  `state` (the page's reactive object)
   * gets: conn ("connecting" | "open" | "closed"), retryAt (ms), skew (server
   * clock minus ours, s), now (s, ticking, on the server's clock), user (from
   * config.json) and errors ([{id, message}], each shown ERROR_SHOWN_MS).
   * opts:
   *   loginUrl     where a page without a session goes;
   *   onConfig(c)  the rest of config.json, for the page;
   *   onSnapshot(objects, lead)  the HELLO answer: objects[lead] is its STATS,
   *                the `lead` objects before it are settings; it replaces
   *                everything the page knew;
   *   onObjects(objects)  any other frame. */
  function link(state, opts) {
    let ws = null;
    let attempts = 0;
    let expectSnapshot = false;
    let retryTimer = null;
    let errorSeq = 0;

    function loadConfig() {
      fetch("config.json", { cache: "no-store", credentials: "same-origin" })
        .then((r) => {
          if (r.status === 401) location.replace(opts.loginUrl); // no session (any more)
          return r.ok ? r.json() : null;
        })
        .then((c) => {
          if (!c) return;
          if (c.user && typeof c.user === "object") state.user = c.user;
          if (typeof c.now === "number") {
            const skew = c.now - Date.now() / 1000;
            state.skew = Math.abs(skew) > SKEW_IGNORED ? skew : 0;
          }
          if (opts.onConfig) opts.onConfig(c);
        })
        .catch(() => {});
    }

    function connect() {
      retryTimer = null;
      state.conn = "connecting";
      let sock;
      try {
        sock = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/callcenter");
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
      const objects = parseFrame(text);
      // The answer to HELLO is the first frame after it with STATS first
      // (after the settings; HEALTH may also come last).
      const lead = leadingSettings(objects);
      if (expectSnapshot && objects.length > lead && objects[lead].type === "STATS") {
        expectSnapshot = false;
        attempts = 0;
        opts.onSnapshot(objects, lead);
        state.conn = "open";
        return;
      }
      opts.onObjects(objects);
    }

    function send(frame) {
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(frame);
        return true;
      }
      showError("Not connected to the server: nothing was sent.");
      return false;
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

    function logout() {
      fetch("logout", { method: "POST", credentials: "same-origin", cache: "no-store" })
        .catch(() => {})
        .finally(() => location.replace(opts.loginUrl));
    }

    // The clock ticks and the link opens (once the page is mounted).
    function start() {
      setInterval(() => {
        state.now = Date.now() / 1000 + state.skew;
      }, 1000);
      loadConfig();
      connect();
    }

    return { start, send, showError, dismissError, logout };
  }

  window.CallcenterLive = Object.freeze({ MAX_REASON, cleanReason, dur, elapsed, link, parseFrame, retryIn });
})();
