// The administrator's screens: hosts, and the server's figures.

import { api } from "../api.js";
import { attempt, form, h, notify, show, when } from "../dom.js";

export async function hosts() {
  const list = await attempt(() => api.hosts());
  if (!list) return show("Hosts");
  const rows = list.map((host) => h("tr", {},
    h("td", {}, host.username),
    h("td", {}, h("span", { class: host.isActive ? "badge on" : "badge" }, host.isActive ? "active" : "disabled")),
    h("td", {}, when(host.createdAt)),
    h("td", { class: "actions" },
      h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => {
        await api.updateHost(host._id, { isActive: !host.isActive });
        notify(`${host.username} is ${host.isActive ? "disabled" : "enabled"}.`);
        await hosts();
      }) }, host.isActive ? `Disable ${host.username}` : `Enable ${host.username}`),
      h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => {
        const password = prompt(`New password for ${host.username}`);
        if (!password) return;
        await api.updateHost(host._id, { password });
        notify(`${host.username}'s password is reset.`);
      }) }, `Reset password of ${host.username}`),
      h("button", { type: "button", class: "danger", onclick: () => attempt(async () => {
        if (!confirm(`Remove ${host.username}, their students, meetings and recordings?`)) return;
        await api.deleteHost(host._id);
        notify(`${host.username} is removed.`);
        await hosts();
      }) }, `Remove ${host.username}`))));
  show("Hosts",
    h("h2", {}, "New host"),
    form("New host", [["username", "Username"], ["password", "Password", "password", { autocomplete: "new-password" }]],
      "Create host", (v) => attempt(async () => {
        await api.createHost(v.username, v.password);
        notify(`Host ${v.username} is created.`);
        await hosts();
      }), "inline"),
    list.length
      ? h("table", {}, h("caption", { class: "muted-text" }, `${list.length} hosts`),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Host"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Created"), h("th", { scope: "col" }, "Actions"))),
        h("tbody", {}, rows))
      : h("p", {}, "No hosts yet."));
}

export async function stats() {
  const s = await attempt(() => api.stats());
  if (!s) return show("Server");
  const stat = (label, value) => h("div", { class: "stat" }, h("b", {}, String(value)), label);
  show("Server",
    h("div", { class: "stats" },
      stat("hosts", s.hosts), stat("students", s.students), stat("active meetings", s.meetings.active),
      stat("meetings in all", s.meetings.total), stat("recordings", s.recordings), stat("live connections", s.connections)),
    h("p", { class: "muted-text" }, "Operators see more with meet top on the server."));
}
