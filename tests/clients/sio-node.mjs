// A socket.io-client v4 driven by the integration tests: commands as JSON lines on stdin,
// everything the client sees as JSON lines on stdout. Binary values travel as {"$bin": base64};
// {"$f32": [numbers]} in a command becomes a Float32Array (what a browser sends).
import { io } from "socket.io-client";
import readline from "node:readline";

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
// The test that drove this client is gone (its end of the pipe closed): so is this client.
process.stdout.on("error", () => process.exit(0));

function enc(v) {
  if (Buffer.isBuffer(v)) return { $bin: v.toString("base64") };
  if (v instanceof ArrayBuffer) return { $bin: Buffer.from(v).toString("base64") };
  if (Array.isArray(v)) return v.map(enc);
  if (v && typeof v === "object") {
    const o = {};
    for (const k of Object.keys(v)) o[k] = enc(v[k]);
    return o;
  }
  return v;
}

function dec(v) {
  if (Array.isArray(v)) return v.map(dec);
  if (v && typeof v === "object") {
    if ("$bin" in v) return Buffer.from(v.$bin, "base64");
    if ("$f32" in v) return new Float32Array(v.$f32.map((x) => (x === "NaN" ? NaN : x)));
    const o = {};
    for (const k of Object.keys(v)) o[k] = dec(v[k]);
    return o;
  }
  return v;
}

let socket = null;

function connect(cmd) {
  if (socket) socket.disconnect();
  const opts = { path: cmd.path ?? "/ws", reconnection: false, forceNew: true, timeout: 5000 };
  if (cmd.auth) opts.auth = cmd.auth;
  if (cmd.query) opts.query = cmd.query;
  if (cmd.transports) opts.transports = cmd.transports;
  const s = io(cmd.url, opts);
  socket = s;
  s.on("connect", () => out({ ev: "connect", id: s.id, transport: s.io.engine.transport.name }));
  s.on("connect_error", (e) => out({ ev: "connect_error", message: e.message }));
  s.on("disconnect", (reason) => out({ ev: "disconnect", reason }));
  s.io.engine.on("upgrade", (t) => out({ ev: "upgrade", transport: t.name }));
  s.onAny((name, ...args) => {
    let data = args[0];
    // Brief mode: audio arrives as its length only (load tests).
    if (cmd.brief && data && data.audioData) data = { ...data, audioData: { $len: data.audioData.byteLength } };
    out({ ev: "event", name, data: enc(data), t: Date.now() });
  });
}

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = JSON.parse(line);
  switch (cmd.op) {
    case "connect":
      connect(cmd);
      break;
    case "emit":
      if (cmd.ack) {
        socket.timeout(cmd.timeout ?? 5000).emit(cmd.event, dec(cmd.data), (err, res) =>
          out({ ev: "ack", id: cmd.id, error: err ? err.message : null, data: enc(res) }),
        );
      } else {
        socket.emit(cmd.event, dec(cmd.data));
      }
      break;
    case "disconnect":
      socket.disconnect();
      break;
    case "exit":
      process.exit(0);
  }
});
rl.on("close", () => process.exit(0));
