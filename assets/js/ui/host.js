// The host's screens: students and meetings.

import { api } from "../api.js";
import { attempt, form, h, notify, view, when } from "../dom.js";
import { accounts, toggle } from "./accounts.js";

export function students() {
  return accounts({
    title: "Students",
    noun: "student",
    load: api.students,
    create: api.createStudent,
    empty: "No students yet: create their accounts here, then give them their username and password.",
    actions: (st, reload) => [
      h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => {
        const username = prompt(`New username for ${st.username}`, st.username);
        const password = prompt(`New password for ${st.username} (leave empty to keep it)`, "");
        const fields = {};
        if (username && username !== st.username) fields.username = username;
        if (password) fields.password = password;
        if (!Object.keys(fields).length) return;
        await api.updateStudent(st._id, fields);
        notify(`${username || st.username} is saved.`);
        await reload();
      }) }, `Edit ${st.username}`),
      toggle(st, api.updateStudent, reload),
      h("button", { type: "button", class: "danger", onclick: () => attempt(async () => {
        if (!confirm(`Delete ${st.username}?`)) return;
        await api.deleteStudent(st._id);
        notify(`${st.username} is deleted.`);
        await reload();
      }) }, `Delete ${st.username}`),
    ],
  });
}

const OPEN = ["created", "active"];

export async function meetings() {
  const show = view();
  const list = await attempt(() => api.hostMeetings());
  if (!list) return show("Meetings");
  const row = (m) => h("tr", {},
    h("td", {}, m.topic),
    h("td", {}, h("span", { class: m.status === "active" ? "badge on" : "badge" }, m.status),
      m.recording ? h("span", { class: "badge rec" }, " recording") : null),
    h("td", {}, when(m.startTime || m.createdAt)),
    h("td", { class: "actions" }, OPEN.includes(m.status) ? [
      h("a", { href: `#/room/${m._id}`, class: "button" }, m.status === "active" ? `Enter ${m.topic}` : `Start ${m.topic}`),
      h("button", { type: "button", class: "danger", onclick: () => attempt(async () => {
        await api.end(m._id);
        notify(`${m.topic} has ended.`);
        await meetings();
      }) }, `End ${m.topic}`),
    ] : h("span", { class: "muted-text" }, m.endReason ? m.endReason.replace("_", " ") : "")));
  const open = list.filter((m) => OPEN.includes(m.status));
  const past = list.filter((m) => !OPEN.includes(m.status));
  const table = (items, caption) => h("table", {}, h("caption", { class: "muted-text" }, caption),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Topic"), h("th", { scope: "col" }, "State"), h("th", { scope: "col" }, "Started"), h("th", { scope: "col" }, "Actions"))),
    h("tbody", {}, items.map(row)));
  show("Meetings",
    h("h2", {}, "New meeting"),
    form("New meeting", [["topic", "Topic", "text", { maxlength: 200 }]], "Create meeting", (v) => attempt(async () => {
      const m = await api.createMeeting(v.topic);
      notify(`${m.topic} is created: start it when you are ready.`);
      await meetings();
    }), "inline"),
    h("h2", {}, "Open"),
    open.length ? table(open, `${open.length} open`) : h("p", {}, "No open meeting."),
    h("h2", {}, "History"),
    past.length ? table(past, `${past.length} past`) : h("p", {}, "No past meeting yet."));
}
