// A live meeting: the Socket.IO connection (docs/API.md "Realtime"), the roster it keeps, and
// the audio path (WebRTC to the SFU, or the PCM relay when WebRTC cannot connect). No DOM:
// screens subscribe with `on(event, fn)` and call the methods.

import { WebRtcAudio } from "./webrtc.js";
import { RelayAudio } from "./relay.js";

/** How long WebRTC may take to connect before the relay takes over. */
export const WEBRTC_DEADLINE_MS = 6000;

/**
 * @typedef {{_id: string, username: string, role: string, online: boolean, muted: boolean,
 *   selfMuted?: boolean, requestedPrivate?: boolean}} Person
 */

export class MeetingConnection {
  /**
   * @param {{token: string, userId: string, meetingId: string, iceServers: RTCIceServer[],
   *   participants: Person[], meeting: any}} opts
   */
  constructor(opts) {
    this.opts = opts;
    this.meeting = opts.meeting;
    /** @type {Map<string, Person>} */
    this.people = new Map(opts.participants.map((p) => [p._id, { ...p }]));
    this.speaker = null;
    /** @type {"connecting"|"webrtc"|"relay"|"closed"} */
    this.transport = "connecting";
    this.handlers = new Map();
    this.audio = null;
    this.mic = null;
    this.micMuted = false;
  }

  /** @param {string} event @param {(payload: any) => void} fn */
  on(event, fn) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(fn);
    return this;
  }

  emitLocal(event, payload) {
    for (const fn of this.handlers.get(event) || []) fn(payload);
    if (event !== "change") for (const fn of this.handlers.get("change") || []) fn({ event, payload });
  }

  /** Connects the socket, then the audio, with the microphone `deviceId` (or the default). */
  async open(deviceId) {
    const { token, meetingId } = this.opts;
    // socket.io-client's browser build (vendor/), loaded by index.html: its ES module build
    // cannot send or receive binary attachments, which the relay's audio is.
    const socket = /** @type {any} */ (globalThis).io(location.origin, { path: "/ws", auth: { token, meetingId }, transports: ["websocket", "polling"] });
    this.socket = socket;
    const ack = await new Promise((resolve, reject) => {
      socket.once("connection-ack", resolve);
      socket.once("connect_error", (e) => reject(new Error(e.message === "Authentication failed"
        ? "The meeting could not be joined: it may have ended, or be full." : e.message)));
    });
    for (const p of ack.participants || []) this.people.set(p._id, { ...this.people.get(p._id), ...p, online: true });
    this.meeting = { ...this.meeting, mode: ack.mode, recording: ack.recording };
    this.listen(socket);
    if (!window.isSecureContext || !navigator.mediaDevices) {
      this.close();
      throw new Error("The microphone can only be used on a secure page: open meet over https (or on this machine as localhost).");
    }
    try {
      this.mic = await navigator.mediaDevices.getUserMedia({
        audio: { deviceId: deviceId ? { exact: deviceId } : undefined, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      this.close();
      throw new Error(`The microphone could not be opened (${e.name}): allow this page to use it, or pick another one, then join again.`);
    }
    await this.startAudio();
    this.emitLocal("change", {});
  }

  listen(socket) {
    const person = (id) => this.people.get(id);
    socket.on("participant-joined", (p) => {
      this.people.set(p.userId, { ...person(p.userId), _id: p.userId, username: p.username, role: p.role, online: true, muted: person(p.userId)?.muted || false });
      this.emitLocal("joined", p);
    });
    socket.on("participant-left", (p) => {
      const old = person(p.userId);
      if (old) old.online = false;
      if (this.speaker === p.userId) this.speaker = null;
      this.emitLocal("left", p);
    });
    socket.on("participant-muted", ({ userId }) => {
      const p = person(userId); if (p) p.muted = true;
      if (userId === this.opts.userId) this.emitLocal("notice", "The host muted you. Nobody hears you until the host unmutes you.");
      this.emitLocal("muted", userId);
    });
    socket.on("participant-unmuted", ({ userId }) => {
      const p = person(userId); if (p) p.muted = false;
      if (userId === this.opts.userId) this.emitLocal("notice", "The host unmuted you: the others hear you again.");
      this.emitLocal("unmuted", userId);
    });
    socket.on("participant-audio-status", ({ userId, muted }) => {
      const p = person(userId); if (p) p.selfMuted = muted;
      this.emitLocal("audio-status", userId);
    });
    socket.on("active-speaker", ({ userId }) => { this.speaker = userId; this.emitLocal("speaker", userId); });
    socket.on("mode-changed", (m) => {
      this.meeting = { ...this.meeting, mode: m.mode, isPrivate: m.isPrivate, privateParticipantId: m.participantId };
      this.speaker = null; // the next active-speaker follows the new rule
      this.emitLocal("mode", m);
    });
    socket.on("recording-started", (r) => {
      this.meeting = { ...this.meeting, recording: { _id: r.recordingId, isPrivate: r.isPrivate, startTime: r.startTime } };
      this.emitLocal("recording", r);
    });
    socket.on("recording-ended", (r) => {
      if (this.meeting.recording?._id === r.recordingId) this.meeting = { ...this.meeting, recording: null };
      this.emitLocal("recording", r);
    });
    socket.on("private-conversation-requested", (r) => {
      const p = person(r.studentId); if (p) p.requestedPrivate = true;
      this.emitLocal("notice", `${r.username} asks for a private talk.`);
    });
    socket.on("private-conversation-declined", () => this.emitLocal("notice", "The host declined your request for a private talk."));
    socket.on("meeting-ended", (m) => { this.meeting = { ...this.meeting, status: "ended", endReason: m.reason }; this.emitLocal("ended", m); this.close(); });
    socket.on("ping", ({ timestamp }) => socket.emit("pong", { timestamp }));
    socket.on("disconnect", (reason) => { if (reason === "io server disconnect") this.close(); else this.emitLocal("notice", "Connection lost; reconnecting…"); });
    socket.io.on("reconnect", () => { this.emitLocal("notice", "Reconnected."); if (this.transport === "webrtc") this.audio?.restart(); });
  }

  /** WebRTC first; the relay when it has not connected within the deadline or is not there. */
  async startAudio() {
    if (typeof RTCPeerConnection === "function") {
      const rtc = new WebRtcAudio(this.socket, this.opts.iceServers, this.mic);
      rtc.onstream = (userId, stream) => this.emitLocal("stream", { userId, stream });
      rtc.onfailed = () => this.fallBack("WebRTC lost its connection");
      this.audio = rtc;
      if (await rtc.connect(WEBRTC_DEADLINE_MS)) {
        this.transport = "webrtc";
        this.emitLocal("transport", this.transport);
        return;
      }
      rtc.close();
    }
    await this.fallBack("WebRTC could not connect");
  }

  async fallBack(why) {
    if (this.transport === "relay" || this.transport === "closed") return;
    this.audio?.close();
    const relay = new RelayAudio(this.socket, this.mic);
    await relay.start();
    relay.muted = this.micMuted;
    this.audio = relay;
    this.transport = "relay";
    this.emitLocal("notice", `${why}: audio goes through the server's relay instead.`);
    this.emitLocal("transport", this.transport);
  }

  /** Mutes or unmutes one's own microphone, and tells the others. */
  setMicMuted(muted) {
    this.micMuted = muted;
    for (const t of this.mic?.getAudioTracks() || []) t.enabled = !muted;
    if (this.audio instanceof RelayAudio) this.audio.muted = muted;
    this.socket?.emit("audio-status", { muted });
    this.emitLocal("self-muted", muted);
  }

  /** Replaces the microphone by another device without leaving. */
  async useMicrophone(deviceId) {
    const mic = await navigator.mediaDevices.getUserMedia({ audio: { deviceId: { exact: deviceId }, echoCancellation: true, noiseSuppression: true, autoGainControl: true } });
    for (const t of mic.getAudioTracks()) t.enabled = !this.micMuted;
    await this.audio?.replaceMicrophone(mic);
    for (const t of this.mic?.getTracks() || []) t.stop();
    this.mic = mic;
    this.emitLocal("change", {});
  }

  request(event, payload) {
    return new Promise((resolve, reject) => {
      this.socket.timeout(10000).emit(event, payload, (err, ack) => {
        if (err) reject(new Error("The server did not answer in time."));
        else if (ack && ack.ok === false) reject(new Error(ack.message));
        else resolve(ack);
      });
    });
  }

  mute(userId) { return this.request("mute-participant", { userId }); }
  unmute(userId) { return this.request("unmute-participant", { userId }); }
  privateWith(userId) { return this.request("switch-mode", { mode: "private", participantId: userId }); }
  broadcast() { return this.request("switch-mode", { mode: "broadcast", participantId: null }); }
  askPrivate() { return this.request("request-private-conversation", {}); }

  /** Whom this user hears now, as the server's rule decides (docs/API.md "Who hears whom"). */
  hears(otherId) {
    const me = this.opts.userId, other = this.people.get(otherId);
    if (!other || other.muted) return false;
    if (this.meeting.mode !== "private") return true;
    const pair = [this.meeting.hostId, this.meeting.privateParticipantId];
    return pair.includes(me) && pair.includes(otherId);
  }

  close() {
    if (this.transport === "closed") return;
    this.transport = "closed";
    this.audio?.close();
    for (const t of this.mic?.getTracks() || []) t.stop();
    this.socket?.close();
    this.emitLocal("closed", {});
  }
}
