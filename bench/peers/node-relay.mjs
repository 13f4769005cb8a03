// The reference relay for bench/fanout.mjs: what the original Node backend did with live audio,
// on Socket.IO v4 — verify the JWT at connect, join the meeting's room, and for every
// `broadcast-audio` convert Float32 to Int16 (clip, ×32768 / ×32767) and emit `audio-broadcast`
// to the room except the sender. No private mode, no mutes (the original had neither working).
//
//   PORT=0 JWT_SECRET=... node bench/peers/node-relay.mjs   → prints {"port": N} on stdout
import { createServer } from "node:http";
import { Server } from "socket.io";
import jwt from "jsonwebtoken";

const secret = process.env.JWT_SECRET;
if (!secret) {
  console.error("JWT_SECRET is required");
  process.exit(2);
}

const httpServer = createServer();
const io = new Server(httpServer, { path: "/ws", maxHttpBufferSize: 256 * 1024 });

io.use((socket, next) => {
  const { token, meetingId } = socket.handshake.auth ?? {};
  try {
    const claims = jwt.verify(token, secret, { algorithms: ["HS256"] });
    socket.data = { userId: claims.sub, role: claims.role, meetingId };
    next();
  } catch {
    next(new Error("Authentication failed"));
  }
});

io.on("connection", (socket) => {
  const { userId, role, meetingId } = socket.data;
  socket.join(meetingId);
  const relay = (data, ack) => {
    const buf = data?.audioData;
    if (!Buffer.isBuffer(buf)) return;
    const f32 = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
    const i16 = new Int16Array(f32.length);
    for (let i = 0; i < f32.length; i++) {
      const s = Math.max(-1, Math.min(1, f32[i]));
      i16[i] = s < 0 ? s * 0x8000 : s * 0x7fff;
    }
    socket.to(meetingId).emit("audio-broadcast", {
      audioData: Buffer.from(i16.buffer),
      userId,
      role,
      sampleRate: data.sampleRate ?? 48000,
      channels: 1,
      timestamp: new Date().toISOString(),
      seq: data.seq,
    });
    if (typeof ack === "function") ack({ ok: true });
  };
  socket.on("broadcast-audio", relay);
  socket.on("audio-stream", relay);
});

httpServer.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  console.log(JSON.stringify({ port: httpServer.address().port }));
});
