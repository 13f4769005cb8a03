// AudioWorklet processors of the relay: `meet-capture` cuts the microphone into 20 ms frames;
// `meet-player` keeps a jitter buffer per speaker (playback starts with 60 ms queued, at most
// 300 ms is kept, the oldest dropped beyond) and mixes them.

const FRAME = 960;
const START = 3 * FRAME;
const MAX = 15 * FRAME;

class Capture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.frame = new Float32Array(FRAME);
    this.fill = 0;
  }
  process(inputs) {
    const input = inputs[0] && inputs[0][0];
    if (!input) return true;
    let i = 0;
    while (i < input.length) {
      const n = Math.min(input.length - i, FRAME - this.fill);
      this.frame.set(input.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      if (this.fill === FRAME) {
        this.port.postMessage(this.frame, [this.frame.buffer]);
        this.frame = new Float32Array(FRAME);
        this.fill = 0;
      }
    }
    return true;
  }
}

class Player extends AudioWorkletProcessor {
  constructor() {
    super();
    /** @type {Map<string, {chunks: Float32Array[], offset: number, queued: number, playing: boolean}>} */
    this.speakers = new Map();
    this.port.onmessage = ({ data }) => {
      if (data.sampleRate && data.sampleRate !== sampleRate) return; // meet's relay clients send 48 kHz
      let s = this.speakers.get(data.userId);
      if (!s) { s = { chunks: [], offset: 0, queued: 0, playing: false }; this.speakers.set(data.userId, s); }
      s.chunks.push(data.samples);
      s.queued += data.samples.length;
      while (s.queued > MAX && s.chunks.length > 1) {
        const dropped = s.chunks.shift();
        s.queued -= dropped.length - s.offset;
        s.offset = 0;
      }
      if (s.queued >= START) s.playing = true;
    };
  }
  process(_inputs, outputs) {
    const out = outputs[0][0];
    out.fill(0);
    for (const s of this.speakers.values()) {
      if (!s.playing) continue;
      let i = 0;
      while (i < out.length && s.chunks.length) {
        const c = s.chunks[0];
        const n = Math.min(out.length - i, c.length - s.offset);
        for (let k = 0; k < n; k++) out[i + k] += c[s.offset + k];
        i += n;
        s.offset += n;
        s.queued -= n;
        if (s.offset === c.length) { s.chunks.shift(); s.offset = 0; }
      }
      if (!s.chunks.length) s.playing = false; // ran dry: wait for the buffer to refill
    }
    for (let k = 0; k < out.length; k++) out[k] = Math.max(-1, Math.min(1, out[k]));
    return true;
  }
}

registerProcessor("meet-capture", Capture);
registerProcessor("meet-player", Player);
