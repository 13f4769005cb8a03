// The Socket.IO PCM relay (docs/API.md "Realtime"), for where WebRTC cannot connect: the
// microphone captured by an AudioWorklet at 48 kHz, sent as 20 ms frames of 16-bit PCM with
// `broadcast-audio`; what others say arrives as `audio-broadcast` (or `private-stream-data`)
// and is played through a jitter buffer, one per speaker, mixed in the worklet.

export const FRAME_SAMPLES = 960; // 20 ms at 48 kHz

export class RelayAudio {
  /** @param {any} socket @param {MediaStream} mic */
  constructor(socket, mic) {
    this.socket = socket;
    this.mic = mic;
    this.muted = false;
    this.seq = 0;
    /** Frames sent, and per speaker the frames heard and their energy (for diagnostics). */
    this.sent = 0;
    /** @type {Map<string, {frames: number, energy: number}>} */
    this.heard = new Map();
    this.onaudio = (m) => this.play(m);
  }

  async start() {
    const ctx = new AudioContext({ sampleRate: 48000, latencyHint: "interactive" });
    this.ctx = ctx;
    await ctx.audioWorklet.addModule("/js/relay-worklet.js");
    this.capture = new AudioWorkletNode(ctx, "meet-capture", { numberOfInputs: 1, numberOfOutputs: 1, channelCount: 1, channelCountMode: "explicit" });
    this.player = new AudioWorkletNode(ctx, "meet-player", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
    this.source = ctx.createMediaStreamSource(this.mic);
    this.source.connect(this.capture);
    this.capture.connect(ctx.destination); // the capture node outputs silence; connected so it runs
    this.player.connect(ctx.destination);
    this.capture.port.onmessage = ({ data }) => this.send(data);
    this.socket.on("audio-broadcast", this.onaudio);
    this.socket.on("private-stream-data", this.onaudio);
    if (ctx.state === "suspended") await ctx.resume().catch(() => {});
  }

  /** @param {Float32Array} frame */
  send(frame) {
    if (this.muted) return;
    const pcm = new Int16Array(frame.length);
    for (let i = 0; i < frame.length; i++) {
      const s = Math.max(-1, Math.min(1, frame[i]));
      pcm[i] = s < 0 ? s * 32768 : s * 32767;
    }
    this.socket.emit("broadcast-audio", { audioData: pcm.buffer, format: "s16", sampleRate: 48000, seq: this.seq++ });
    this.sent++;
  }

  play({ audioData, userId, sampleRate }) {
    if (!this.player || !(audioData instanceof ArrayBuffer) || audioData.byteLength < 2) return;
    const pcm = new Int16Array(audioData, 0, audioData.byteLength >> 1);
    const f = new Float32Array(pcm.length);
    let energy = 0;
    for (let i = 0; i < pcm.length; i++) { f[i] = pcm[i] / 32768; energy += f[i] * f[i]; }
    const h = this.heard.get(userId) || { frames: 0, energy: 0 };
    h.frames++;
    h.energy += energy / 48000; // seconds × power, like getStats' totalAudioEnergy
    this.heard.set(userId, h);
    this.player.port.postMessage({ userId, samples: f, sampleRate }, [f.buffer]);
  }

  async replaceMicrophone(mic) {
    this.mic = mic;
    this.source?.disconnect();
    this.source = this.ctx.createMediaStreamSource(mic);
    this.source.connect(this.capture);
  }

  close() {
    this.socket.off("audio-broadcast", this.onaudio);
    this.socket.off("private-stream-data", this.onaudio);
    this.source?.disconnect();
    this.ctx?.close().catch(() => {});
  }
}
