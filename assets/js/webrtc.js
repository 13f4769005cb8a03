// WebRTC with the SFU (docs/API.md "WebRTC"): one RTCPeerConnection, the microphone sent in it,
// one remote stream per other participant (stream id = their userId), the server re-offering as
// people come and go. A lost connection is replaced by a new one (a new offer), never patched.

export class WebRtcAudio {
  /** @param {any} socket @param {RTCIceServer[]} iceServers @param {MediaStream} mic */
  constructor(socket, iceServers, mic) {
    this.socket = socket;
    this.iceServers = iceServers;
    this.mic = mic;
    /** @type {(userId: string, stream: MediaStream) => void} */
    this.onstream = () => {};
    this.onfailed = () => {};
    this.closed = false;
    this.onsignal = (msg) => this.handle(msg?.signal);
    socket.on("webrtc-signal", this.onsignal);
  }

  /** Opens a connection; resolves true once connected, false after `deadline` ms. */
  connect(deadline) {
    this.pc?.close();
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    this.sender = pc.addTrack(this.mic.getAudioTracks()[0], this.mic);
    pc.ontrack = ({ streams }) => { if (streams[0]) this.onstream(streams[0].id, streams[0]); };
    pc.onicecandidate = ({ candidate }) => {
      if (candidate && candidate.candidate) this.signal({ type: "candidate", candidate: candidate.toJSON() });
    };
    const connected = new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), deadline);
      pc.onconnectionstatechange = () => {
        if (pc.connectionState === "connected") { clearTimeout(timer); resolve(true); }
        if (pc.connectionState === "failed" && pc === this.pc && !this.closed) {
          clearTimeout(timer);
          resolve(false);
          this.recover();
        }
      };
    });
    this.offer(pc);
    return connected;
  }

  async offer(pc) {
    try {
      await pc.setLocalDescription(await pc.createOffer());
      // The answer comes back as an event too, ordered before any server offer: that one is applied.
      await this.request({ type: "offer", sdp: pc.localDescription.sdp });
    } catch (e) {
      console.warn("offer refused:", e.message);
    }
  }

  /** A failed connection (a network change): one new connection, else the relay. */
  async recover() {
    if (this.recovering) return;
    this.recovering = true;
    const ok = await this.connect(6000);
    this.recovering = false;
    if (!ok && !this.closed) this.onfailed();
  }

  /** After the socket reconnected: the server closed the old connection with the old socket. */
  restart() { if (!this.closed) this.recover(); }

  async handle(signal) {
    const pc = this.pc;
    if (!signal || !pc || this.closed) return;
    try {
      if (signal.type === "answer") {
        if (pc.signalingState === "have-local-offer") await pc.setRemoteDescription(signal);
      } else if (signal.type === "offer") {
        await pc.setRemoteDescription(signal);
        await pc.setLocalDescription(await pc.createAnswer());
        await this.request({ type: "answer", sdp: pc.localDescription.sdp });
      } else if (signal.type === "candidate") {
        await pc.addIceCandidate(signal.candidate);
      }
    } catch (e) {
      console.warn("signal", signal.type, "not applied:", e.message);
    }
  }

  signal(signal) { this.socket.emit("webrtc-signal", { signal }); }

  request(signal) {
    return new Promise((resolve, reject) => {
      this.socket.timeout(10000).emit("webrtc-signal", { signal }, (err, ack) => {
        if (err) reject(new Error("no answer"));
        else if (ack && ack.ok === false) reject(new Error(ack.message));
        else resolve(ack);
      });
    });
  }

  async replaceMicrophone(mic) {
    this.mic = mic;
    await this.sender?.replaceTrack(mic.getAudioTracks()[0]);
  }

  close() {
    this.closed = true;
    this.socket.off("webrtc-signal", this.onsignal);
    this.pc?.close();
  }
}
