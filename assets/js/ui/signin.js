// Sign-in (students and staff use the same form) and the change of password.

import { api, session, setSession } from "../api.js";
import { attempt, form, h, notify, show } from "../dom.js";

/** @param {(s: import("../api.js").Session) => void} done */
export function signIn(done) {
  show("Sign in",
    h("p", {}, "Students, hosts and administrators sign in here."),
    form("Sign in", [
      ["username", "Username", "text", { autocomplete: "username", autofocus: true }],
      ["password", "Password", "password", { autocomplete: "current-password" }],
    ], "Sign in", (v) => attempt(async () => done(await api.login(v.username, v.password)))));
  /** @type {HTMLInputElement|null} */ (document.querySelector("input[name=username]"))?.focus();
}

export function changePassword() {
  show("Change password",
    form("Change password", [
      ["currentPassword", "Current password", "password", { autocomplete: "current-password" }],
      ["newPassword", "New password", "password", { autocomplete: "new-password", minlength: 8 }],
    ], "Change password", (v, f) => attempt(async () => {
      const r = await api.changePassword(v.currentPassword, v.newPassword);
      const s = session();
      if (s) setSession({ ...s, token: r.token, expiresAt: r.expiresAt });
      /** @type {HTMLFormElement} */ (f).reset();
      notify("Your password is changed. Other devices must sign in again.");
    })));
}
