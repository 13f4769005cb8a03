// The student's meetings: their host's open ones.

import { api } from "../api.js";
import { attempt, h, view, when } from "../dom.js";

export async function studentMeetings() {
  const show = view();
  const [info, list] = await Promise.all([attempt(() => api.studentInfo()), attempt(() => api.studentMeetings())]);
  if (!list) return show("Meetings");
  show("Meetings",
    info ? h("p", {}, `Your host is ${info.host.username}.`) : null,
    list.length
      ? h("ul", { class: "people" }, list.map((m) => h("li", {},
        h("span", { class: "name" }, m.topic),
        h("span", { class: m.status === "active" ? "badge on" : "badge" }, m.status === "active" ? "live" : "not started"),
        m.recording ? h("span", { class: "badge rec" }, "recording") : null,
        h("span", { class: "muted-text" }, when(m.startTime || m.createdAt)),
        h("a", { href: `#/room/${m._id}` }, `Join ${m.topic}`))))
      : h("p", {}, "No meeting is open now. This page shows your host's meetings as soon as they are created."));
}
