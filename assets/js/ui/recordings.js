// Recordings with playback: the host's (with each speaker's track, and delete), a student's
// own and private ones.

import { api } from "../api.js";
import { attempt, clock, h, notify, view, when } from "../dom.js";

/** A player that fetches its signed link when asked to play (links expire). */
function player(rec, track, label) {
  const audio = h("audio", { controls: true, preload: "none", "aria-label": label });
  const load = h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => {
    audio.src = await api.playbackUrl(rec._id, track);
    load.remove();
    audio.focus();
    await audio.play().catch(() => {});
  }) }, `Load ${label}`);
  return h("div", { class: "controls" }, load, audio);
}

function item(rec, role) {
  const ready = rec.status === "completed";
  return h("li", {},
    h("span", { class: "name" }, rec.meetingTopic),
    rec.isPrivate ? h("span", { class: "badge private" }, "private") : null,
    h("span", { class: rec.status === "recording" ? "badge rec" : "badge" }, rec.status),
    h("span", { class: "muted-text" }, `${when(rec.startTime)} · ${clock(rec.duration || 0)}`),
    role === "host" ? h("button", { type: "button", class: "danger", onclick: () => attempt(async () => {
      if (!confirm(`Delete the recording of ${rec.meetingTopic}?`)) return;
      await api.deleteRecording(rec._id);
      notify("The recording is deleted.");
      await recordings(role);
    }) }, `Delete recording of ${rec.meetingTopic}`) : null,
    ready ? player(rec, null, `recording of ${rec.meetingTopic}`) : null,
    ready && role === "host" && rec.tracks?.length
      ? h("details", {}, h("summary", {}, `Each speaker (${rec.tracks.length})`),
        rec.tracks.map((t) => h("div", {}, h("span", {}, t.username), player(rec, t.userId, `${t.username}'s track`))))
      : null);
}

export async function recordings(role) {
  const show = view();
  if (role === "host") {
    const list = await attempt(() => api.hostRecordings());
    if (!list) return show("Recordings");
    return show("Recordings", list.length ? h("ul", { class: "people" }, list.map((r) => item(r, role)))
      : h("p", {}, "No recordings yet: start one from a meeting's room."));
  }
  const [open, mine] = await Promise.all([attempt(() => api.studentRecordings()), attempt(() => api.privateRecordings())]);
  show("Recordings",
    h("h2", {}, "Meetings you were in"),
    open?.length ? h("ul", { class: "people" }, open.map((r) => item(r, role))) : h("p", {}, "None yet."),
    h("h2", {}, "Your private talks"),
    mine?.length ? h("ul", { class: "people" }, mine.map((r) => item(r, role))) : h("p", {}, "None yet."));
}
