// The live room, for the host and for students: who is there and who speaks, one's own
// microphone, and for the host the mutes, the private talk and the recording.

import { api, session } from "../api.js";
import { attempt, clock, h, notify, view } from "../dom.js";
import { MeetingConnection } from "../meeting.js";
import { onLeave } from "../app.js";

export async function room(meetingId, role) {
  const show = view();
  const s = session();
  if (!s) return;
  const info = await attempt(() => api.meeting(meetingId));
  if (!info) return show("Meeting");
  const m = info.meeting;
  if (!info.canJoin) {
    return show(m.topic, h("p", {}, m.status === "ended" || m.status === "archived"
      ? "This meeting has ended." : "This meeting cannot be joined now."),
    h("a", { href: role === "host" ? "#/host/meetings" : "#/student/meetings" }, "Back to the meetings"));
  }
  const devices = h("select", { id: "mic", "aria-label": "Microphone" });
  const join = h("button", { type: "button", id: "join" }, `Join ${m.topic}`);
  show(m.topic,
    h("p", {}, role === "host" && m.status === "created"
      ? "Joining starts the meeting: your students can then join too." : "Join to hear the others and be heard."),
    h("div", { class: "controls" }, h("label", {}, "Microphone", devices), join));
  fillDevices(devices);
  join.addEventListener("click", () => attempt(async () => {
    join.disabled = true;
    try {
      const joined = await api.join(meetingId);
      const conn = new MeetingConnection({
        token: s.token, userId: s._id, meetingId, iceServers: joined.iceServers,
        participants: joined.participants, meeting: joined.meeting,
      });
      onLeave(async () => { conn.close(); window.meetRoom = undefined; await api.leave(meetingId).catch(() => {}); });
      // The live connection, for diagnostics from the browser's console (and the browser tests).
      window.meetRoom = conn;
      live(conn, role, s._id, devices, show);
      try {
        await conn.open(/** @type {HTMLSelectElement} */ (devices).value || undefined);
      } catch (e) {
        // Not in after all: the seat goes, and the page is the one before joining.
        conn.close();
        onLeave(null);
        window.meetRoom = undefined;
        await api.leave(meetingId).catch(() => {});
        await room(meetingId, role);
        throw e;
      }
    } catch (e) {
      join.disabled = false;
      throw e;
    }
  }));
}

async function fillDevices(select, current) {
  try {
    const all = await navigator.mediaDevices.enumerateDevices();
    const mics = all.filter((d) => d.kind === "audioinput");
    select.replaceChildren(...mics.map((d, i) => h("option", { value: d.deviceId, selected: d.deviceId === current }, d.label || `Microphone ${i + 1}`)));
  } catch { /* no device list: the default microphone */ }
}

/** The room once joined: redrawn from the connection's state at every change. */
/** @param {(title: string, ...children: any[]) => void} show the room screen's own */
function live(conn, role, me, devices, show) {
  const host = role === "host";
  const people = h("ul", { class: "people", "aria-label": "People in the meeting" });
  const hearing = h("p", { class: "hearing", role: "status" });
  const badges = h("div", { class: "room-head" });
  const meter = h("meter", { min: 0, max: 1, value: 0, "aria-label": "Your microphone level" });
  const selfMute = h("button", { type: "button", id: "self-mute", "aria-pressed": "false", onclick: () => conn.setMicMuted(!conn.micMuted) }, "Mute myself");
  const leave = h("button", { type: "button", class: "secondary", id: "leave", onclick: () => { location.hash = host ? "#/host/meetings" : "#/student/meetings"; } }, "Leave");
  const audios = h("div", { hidden: true });
  const remaining = h("span", { class: "badge", id: "time-left" });
  const record = h("button", { type: "button", id: "record", onclick: () => attempt(async () => {
    if (conn.meeting.recording) await api.stopRecording(conn.meeting._id);
    else await api.startRecording(conn.meeting._id);
  }) }, "Start recording");
  const broadcast = h("button", { type: "button", id: "broadcast", class: "secondary", onclick: () => attempt(() => conn.broadcast()) }, "Back to everyone");
  const end = h("button", { type: "button", id: "end", class: "danger", onclick: () => attempt(async () => {
    if (!confirm(`End ${conn.meeting.topic} for everyone?`)) return;
    await api.end(conn.meeting._id);
  }) }, "End the meeting");
  const ask = h("button", { type: "button", class: "secondary", id: "ask-private", onclick: () => attempt(async () => { await conn.askPrivate(); notify("Your host is asked for a private talk."); }) }, "Ask for a private talk");
  devices.addEventListener("change", () => attempt(() => conn.useMicrophone(devices.value)));
  show(conn.meeting.topic, badges, hearing,
    h("div", { class: "controls" }, h("label", {}, "Microphone", devices), meter, selfMute, host ? record : ask, host ? broadcast : null, leave, host ? end : null),
    h("h2", {}, "People"), people, audios);

  const name = (id) => conn.people.get(id)?.username || "someone";
  const draw = () => {
    const mt = conn.meeting;
    const priv = mt.mode === "private";
    badges.replaceChildren(...[
      h("span", { class: "badge", id: "transport" }, conn.transport === "relay" ? "audio: relay" : conn.transport === "webrtc" ? "audio: WebRTC" : "audio: connecting"),
      priv ? h("span", { class: "badge private", id: "mode" }, "private talk") : h("span", { class: "badge", id: "mode" }, "everyone"),
      mt.recording ? h("span", { class: "badge rec", id: "recording", role: "status" }, mt.recording.isPrivate ? "● recording (private)" : "● recording") : null,
      remaining].filter(Boolean));
    hearing.textContent = !priv ? "Everyone hears everyone who is not muted."
      : me === mt.hostId ? `Private talk with ${name(mt.privateParticipantId)}: only you two hear each other.`
        : me === mt.privateParticipantId ? "Private talk with your host: only you two hear each other."
          : `The host is in a private talk with ${name(mt.privateParticipantId)}: you hear nobody, and nobody hears you, until it ends.`;
    record.textContent = mt.recording ? "Stop recording" : "Start recording";
    broadcast.hidden = !priv;
    selfMute.textContent = conn.micMuted ? "Unmute myself" : "Mute myself";
    selfMute.setAttribute("aria-pressed", String(conn.micMuted));
    const list = [...conn.people.values()].filter((p) => p.online);
    people.replaceChildren(...list.map((p) => {
      const speaking = conn.speaker === p._id;
      const li = h("li", { class: speaking ? "speaking" : "", "data-user": p._id },
        h("span", { class: "name" }, p.username, p._id === me ? " (you)" : "", p.role === "host" ? " · host" : ""),
        speaking ? h("span", { class: "badge on" }, "speaking") : null,
        p.muted ? h("span", { class: "badge private" }, "muted by the host") : null,
        p.selfMuted ? h("span", { class: "badge" }, "microphone off") : null,
        p._id !== me && !conn.hears(p._id) ? h("span", { class: "badge" }, "not heard by you") : null,
        p.requestedPrivate && host ? h("span", { class: "badge private" }, "asks for a private talk") : null);
      if (host && p._id !== me) {
        li.append(
          h("button", { type: "button", class: "secondary", onclick: () => attempt(() => (p.muted ? conn.unmute(p._id) : conn.mute(p._id))) },
            p.muted ? `Unmute ${p.username}` : `Mute ${p.username}`),
          mt.mode === "private" && mt.privateParticipantId === p._id ? null
            : h("button", { type: "button", class: "secondary", onclick: () => attempt(async () => { p.requestedPrivate = false; await conn.privateWith(p._id); }) }, `Private talk with ${p.username}`));
      }
      return li;
    }));
  };
  const tick = setInterval(() => {
    const mt = conn.meeting;
    if (mt.startTime && mt.maxDurationSeconds) {
      const left = mt.maxDurationSeconds - (Date.now() - new Date(mt.startTime).getTime()) / 1000;
      remaining.textContent = `${clock(left)} left`;
    }
    meter.value = level(conn);
  }, 200);
  conn.on("change", draw);
  conn.on("notice", (text) => notify(text));
  conn.on("mode", (mo) => {
    if (mo.mode === "private" && me !== mo.hostId && me !== mo.participantId) notify(`The host started a private talk with ${name(mo.participantId)}.`);
    else if (mo.mode === "broadcast") notify("The private talk has ended: everyone hears everyone again.");
  });
  conn.on("stream", ({ userId, stream }) => {
    let el = /** @type {HTMLAudioElement|null} */ (audios.querySelector(`audio[data-user="${userId}"]`));
    if (!el) { el = h("audio", { autoplay: true, "data-user": userId }); audios.append(el); }
    if (el.srcObject !== stream) el.srcObject = stream;
  });
  conn.on("ended", () => {
    const back = host ? "#/host/meetings" : "#/student/meetings";
    show(conn.meeting.topic, h("p", { role: "status" }, "The meeting has ended."), h("a", { href: back }, "Back to the meetings"));
  });
  conn.on("closed", () => clearInterval(tick));
  draw();
}

/** The microphone's level, 0–1, from an analyser made on first use. */
function level(conn) {
  if (!conn.mic) return 0;
  if (!conn.analyser || conn.analyserMic !== conn.mic) {
    conn.levelCtx?.close().catch(() => {});
    conn.levelCtx = new AudioContext();
    conn.analyser = conn.levelCtx.createAnalyser();
    conn.analyser.fftSize = 512;
    conn.levelCtx.createMediaStreamSource(conn.mic).connect(conn.analyser);
    conn.analyserMic = conn.mic;
    conn.on("closed", () => conn.levelCtx?.close().catch(() => {}));
  }
  const data = new Float32Array(conn.analyser.fftSize);
  conn.analyser.getFloatTimeDomainData(data);
  let sum = 0;
  for (const v of data) sum += v * v;
  const db = 10 * Math.log10(sum / data.length + 1e-12);
  return conn.micMuted ? 0 : Math.max(0, Math.min(1, (db + 60) / 60));
}
