// The administrator's screens: hosts, and the server's figures.

import { api } from "../api.js";
import { attempt, h, notify, view } from "../dom.js";
import { accounts, toggle } from "./accounts.js";

export function hosts() {
  return accounts({
    title: "Hosts",
    noun: "host",
    load: api.hosts,
    create: api.createHost,
    empty: "No hosts yet.",
    actions: (host, reload) => [
      toggle(host, api.updateHost, reload),
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
        await reload();
      }) }, `Remove ${host.username}`),
    ],
  });
}

export async function stats() {
  const show = view();
  const s = await attempt(() => api.stats());
  if (!s) return show("Server");
  const stat = (label, value) => h("div", { class: "stat" }, h("b", {}, String(value)), label);
  show("Server",
    h("div", { class: "stats" },
      stat("hosts", s.hosts), stat("students", s.students), stat("active meetings", s.meetings.active),
      stat("meetings in all", s.meetings.total), stat("recordings", s.recordings), stat("live connections", s.connections)),
    h("p", { class: "muted-text" }, "Operators see more with meet top on the server."));
}
