/* Login page of the dashboard: posts the user name and password to /login as
 * JSON and goes to the dashboard on success. Same rules as app.js: Vue render
 * functions only (strict CSP), and the password never leaves this page except
 * in that one same-origin POST.
 */
(function () {
  "use strict";

  const { createApp, reactive, h } = Vue;

  const state = reactive({ user: "", password: "", busy: false, error: "" });

  function submit(e) {
    e.preventDefault();
    if (state.busy) return;
    state.busy = true;
    state.error = "";
    fetch("login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user: state.user.trim(), password: state.password }),
      credentials: "same-origin",
      cache: "no-store",
    })
      .then((r) => r.json().catch(() => ({})).then((body) => ({ r, body })))
      .then(({ r, body }) => {
        if (r.ok) {
          // Back to the agent page when that sent us here; any other value is ignored.
          const then = new URLSearchParams(location.search).get("then");
          location.replace(then === "agent" ? "agent" : "./");
          return;
        }
        state.password = "";
        state.error = body.error || `Login failed (${r.status})`;
      })
      .catch(() => {
        state.error = "The server cannot be reached.";
      })
      .finally(() => {
        state.busy = false;
      });
  }

  const App = {
    render() {
      return h("div", { class: "login-wrap" }, [
        h("form", { class: "card panel login-card", "data-form": "login", onSubmit: submit }, [
          h("div", { class: "card-header panel-header" }, [
            h("div", { class: "brand" }, [
              h("img", { src: "favicon.svg", alt: "", class: "brand-logo" }),
              h("h2", "Call center"),
            ]),
          ]),
          h("div", { class: "card-body" }, [
            h("label", { class: "form-label", for: "login-user" }, "User name"),
            h("input", { id: "login-user", class: "form-control mb-3", autocomplete: "username", required: true, autofocus: true,
              value: state.user, onInput: (e) => { state.user = e.target.value; } }),
            h("label", { class: "form-label", for: "login-password" }, "Password"),
            h("input", { id: "login-password", type: "password", class: "form-control mb-3", autocomplete: "current-password", required: true,
              value: state.password, onInput: (e) => { state.password = e.target.value; } }),
            state.error ? h("div", { class: "alert alert-danger py-2", role: "alert", "data-error": "" }, state.error) : null,
            h("button", { type: "submit", class: "btn btn-primary w-100", disabled: state.busy }, state.busy ? "Logging in…" : "Log in"),
          ]),
        ]),
      ]);
    },
  };

  createApp(App).mount("#login");
})();
