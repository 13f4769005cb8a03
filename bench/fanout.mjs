// Socket.IO audio fan-out benchmark: `meet serve` against the reference Node relay
// (bench/peers/node-relay.mjs), same load, same run. See bench/README.md.
//
//   node bench/fanout.mjs --meet target/release/meet [--duration 20] [--scenarios 1x50,10x10]
//   node bench/fanout.mjs --meet target/release/meet --frame-samples 16384 --scenarios 1x3,1x3:silent
//
// A scenario `KxN:silent` adds to every meeting one more student whose socket connects and
// then never reads (its TCP receive window fills, then the server's queue for it): what that
// costs the listeners (their latency against the same scenario without it) and the server
// (its RSS). Large frames (`--frame-samples 16384`: 64 KiB in, 32 KiB out) fill it quickly.
//
// Each meeting has a host and N-1 students. Every 20 ms each host sends 20 ms of 48 kHz mono
// Float32 (960 samples, 3,840 bytes) with a sequence number; every other participant receives
// it as Int16. Receivers measure delivered frames/s, end-to-end latency (send → receive, same
// process clock) and lost frames; the server's CPU seconds (utime+stime from /proc) and peak RSS
// (VmHWM) are read around the measured window.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { connect as tcpConnect } from "node:net";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";

const require = createRequire(new URL("./peers/package.json", import.meta.url));
const { io } = require("socket.io-client");

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const MEET = args.meet ?? "target/release/meet";
const DURATION = Number(args.duration ?? 20);
const SCENARIOS = (args.scenarios ?? "1x50,10x10").split(",").map((s) => {
  const [shape, extra] = s.split(":");
  const [meetings, size] = shape.split("x").map(Number);
  if (!(meetings > 0 && size > 1) || (extra !== undefined && extra !== "silent")) throw new Error(`scenario ${s}: KxN or KxN:silent`);
  return { label: s, meetings, size, silent: extra === "silent" };
});
const JSON_OUT = args.json;
const SECRET = "fanout-bench-jwt-secret-0123456789abcdef";
const ADMIN_PASSWORD = "fanout-admin-pass";
const FRAME_SAMPLES = Number(args["frame-samples"] ?? 960);
const TICKS = 100; // /proc clock ticks per second (USER_HZ)

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function procStats(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpu = (Number(fields[11]) + Number(fields[12])) / TICKS;
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kib = (key) => Number(status.match(new RegExp(`${key}:\\s+(\\d+)`))?.[1] ?? 0);
  return { cpu, rssMiB: kib("VmRSS") / 1024, hwmMiB: kib("VmHWM") / 1024 };
}

/** Spawns a server and waits for the line that tells its address. */
function startProcess(cmd, argv, env, parseAddr) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env, stdio: ["ignore", "pipe", "pipe"] });
    const timer = setTimeout(() => reject(new Error(`${cmd}: no address within 60 s`)), 60_000);
    const onLine = (line) => {
      const addr = parseAddr(line);
      if (addr) {
        clearTimeout(timer);
        resolve({ child, addr });
      }
    };
    createInterface({ input: child.stdout }).on("line", onLine);
    createInterface({ input: child.stderr }).on("line", (line) => {
      if (line.includes("panicked")) console.error(line);
      onLine(line);
    });
    child.on("exit", (code) => reject(new Error(`${cmd} exited with ${code}`)));
  });
}

async function api(base, path, token, body) {
  const res = await fetch(base + path, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

/** Accounts and meetings on a running meet: one host, enough students, one meeting per group
 * (and a silent student more in each, `silent`). */
async function provision(base, meetings, size, silent) {
  const admin = (await api(base, "/api/auth/login", null, { username: "admin", password: ADMIN_PASSWORD })).token;
  await api(base, "/api/admin/hosts", admin, { username: "bench-host", password: "bench-host-pass" });
  const host = (await api(base, "/api/auth/login", null, { username: "bench-host", password: "bench-host-pass" })).token;
  const students = [];
  const per = size - 1 + (silent ? 1 : 0);
  for (let i = 0; i < meetings * per; i++) {
    const username = `bench-student-${i}`;
    await api(base, "/api/host/students", host, { username, password: "bench-student-pass" });
    students.push((await api(base, "/api/auth/login", null, { username, password: "bench-student-pass" })).token);
  }
  const groups = [];
  for (let m = 0; m < meetings; m++) {
    const id = (await api(base, "/api/meetings/create", host, { topic: `bench ${m}` })).meeting._id;
    const mine = students.slice(m * per, (m + 1) * per);
    groups.push({ id, host, students: mine.slice(0, size - 1), silent: silent ? mine[size - 1] : null });
  }
  return groups;
}

function connect(url, token, meetingId) {
  return new Promise((resolve, reject) => {
    const s = io(url, { path: "/ws", transports: ["websocket"], auth: { token, meetingId }, reconnection: false, forceNew: true });
    s.once("connect", () => resolve(s));
    s.once("connect_error", (e) => reject(new Error(`connect: ${e.message}`)));
  });
}

/** A masked websocket text frame (client to server) of under 64 KiB. */
function textFrame(text) {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const len = payload.length < 126 ? Buffer.from([0x80 | payload.length]) : Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 255]);
  return Buffer.concat([Buffer.from([0x81]), len, mask, payload.map((b, i) => b ^ mask[i % 4])]);
}

/** A Socket.IO client over a raw websocket that joins the meeting, then never reads again. */
function silentSocket(url, token, meetingId) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = tcpConnect(Number(port), hostname, () => {
      sock.write(
        `GET /ws/?EIO=4&transport=websocket HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    let head = "";
    const onData = (d) => {
      head += d.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      if (!head.startsWith("HTTP/1.1 101")) return reject(new Error(`silent socket: ${head.split("\r\n")[0]}`));
      // Engine.IO's open packet came (or comes); the Socket.IO connect with the auth, then deaf.
      sock.off("data", onData);
      sock.write(textFrame(`40${JSON.stringify({ token, meetingId })}`));
      sock.pause();
      resolve(sock);
    };
    sock.on("data", onData);
    sock.once("error", reject);
  });
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

/** Runs the load against `url` while measuring the process `pid`. */
async function load(url, pid, groups) {
  const frame = new Float32Array(FRAME_SAMPLES);
  for (let i = 0; i < FRAME_SAMPLES; i++) frame[i] = Math.sin(i / 8) * 0.5;
  const meetings = [];
  for (const g of groups) {
    const host = await connect(url, g.host, g.id);
    const sent = new Map();
    const receivers = [];
    for (const token of g.students) {
      const s = await connect(url, token, g.id);
      const r = { socket: s, got: 0 };
      s.on("audio-broadcast", (d) => {
        const t0 = sent.get(d.seq);
        if (t0 === undefined) return;
        r.got++;
        latencies.push(performance.now() - t0);
      });
      receivers.push(r);
    }
    const silent = g.silent ? await silentSocket(url, g.silent, g.id) : null;
    meetings.push({ host, sent, receivers, silent, seq: 0 });
  }
  const latencies = [];
  await sleep(1000);
  const before = procStats(pid);
  const start = performance.now();
  const frames = Math.round((DURATION * 1000) / 20);
  for (let n = 0; n < frames; n++) {
    const due = start + n * 20;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    for (const m of meetings) {
      m.sent.set(n, performance.now());
      m.host.emit("broadcast-audio", { audioData: frame, format: "f32", sampleRate: 48000, seq: n });
    }
  }
  await sleep(2000);
  const after = procStats(pid);
  const elapsed = (performance.now() - start) / 1000 - 2;
  for (const m of meetings) {
    m.host.disconnect();
    for (const r of m.receivers) r.socket.disconnect();
    m.silent?.destroy();
  }
  const expected = meetings.reduce((a, m) => a + frames * m.receivers.length, 0);
  const delivered = meetings.reduce((a, m) => a + m.receivers.reduce((b, r) => b + r.got, 0), 0);
  latencies.sort((a, b) => a - b);
  const cpu = after.cpu - before.cpu;
  return {
    framesPerSecond: delivered / elapsed,
    delivered,
    lost: expected - delivered,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    cpuSeconds: cpu,
    cpuMicrosPerFrame: (cpu * 1e6) / Math.max(1, delivered),
    peakRssMiB: after.hwmMiB,
    rssMiB: after.rssMiB,
    rssGrowthMiB: after.rssMiB - before.rssMiB,
  };
}

async function runMeet({ meetings, size, silent }) {
  const dir = mkdtempSync(join(tmpdir(), "meet-fanout-"));
  const env = {
    PATH: process.env.PATH,
    MEET_CONFIG: "/dev/null",
    MEET_SERVER__DATA_DIR: join(dir, "data"),
    MEET_AUTH__ADMIN_PASSWORD: ADMIN_PASSWORD,
    MEET_AUTH__JWT_SECRET: SECRET,
    MEET_AUTH__ARGON2_MEMORY_KIB: "1024",
    MEET_AUTH__ARGON2_ITERATIONS: "1",
    MEET_LOGGING__FORMAT: "json",
    MEET_LOGGING__LEVEL: "info,meet::access=warn,surrealdb=warn,surrealkv=warn",
    MEET_HTTP__RATE_LIMIT__REQUESTS_PER_WINDOW: "1000000",
    ...(process.env.TOKIO_WORKER_THREADS ? { TOKIO_WORKER_THREADS: process.env.TOKIO_WORKER_THREADS } : {}),
  };
  const { child, addr } = await startProcess(MEET, ["serve", "--listen", "127.0.0.1:0"], env, (line) => {
    try {
      const v = JSON.parse(line);
      return v.message === "meet is listening" ? `http://${v.addr}` : null;
    } catch {
      return null;
    }
  });
  try {
    const groups = await provision(addr, meetings, size, silent);
    const result = await load(addr, child.pid, groups);
    const metrics = await (await fetch(`${addr}/metrics`)).text();
    result.serverDropped = Number(metrics.match(/meet_audio_frames_dropped_total (\d+)/)?.[1] ?? 0);
    return { result, groups };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function runNode(groups) {
  const script = new URL("./peers/node-relay.mjs", import.meta.url).pathname;
  const { child, addr } = await startProcess("node", [script], { PATH: process.env.PATH, JWT_SECRET: SECRET, PORT: "0" }, (line) => {
    try {
      const v = JSON.parse(line);
      return v.port ? `http://127.0.0.1:${v.port}` : null;
    } catch {
      return null;
    }
  });
  try {
    return await load(addr, child.pid, groups);
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => child.once("exit", r));
  }
}

const fmt = (v, d = 1) => (Number.isFinite(v) ? v.toFixed(d) : "-");
const rows = [];
for (const sc of SCENARIOS) {
  const { result: meet, groups } = await runMeet(sc);
  const node = await runNode(groups);
  rows.push({ scenario: sc.label, meet, node });
}

console.log(
  `\nfan-out: every 20 ms each host sends ${(FRAME_SAMPLES * 4).toLocaleString("en")} B of Float32; ${DURATION} s measured per run; websocket clients`,
);
console.log(
  [
    "scenario".padEnd(9),
    "server".padEnd(10),
    "frames/s".padStart(9),
    "p50 ms".padStart(7),
    "p99 ms".padStart(7),
    "lost".padStart(6),
    "CPU s".padStart(7),
    "µs CPU/frame".padStart(13),
    "peak RSS MiB".padStart(13),
    "RSS +MiB".padStart(9),
  ].join(" "),
);
for (const { scenario, meet, node } of rows) {
  for (const [name, r] of [
    ["meet", meet],
    ["node-relay", node],
  ]) {
    console.log(
      [
        scenario.padEnd(9),
        name.padEnd(10),
        fmt(r.framesPerSecond, 0).padStart(9),
        fmt(r.p50, 2).padStart(7),
        fmt(r.p99, 2).padStart(7),
        String(r.lost).padStart(6),
        fmt(r.cpuSeconds, 2).padStart(7),
        fmt(r.cpuMicrosPerFrame, 1).padStart(13),
        fmt(r.peakRssMiB, 1).padStart(13),
        fmt(r.rssGrowthMiB, 1).padStart(9),
      ].join(" "),
    );
  }
  console.log(
    `${scenario.padEnd(9)} ratio      node/meet CPU per frame ${fmt(node.cpuMicrosPerFrame / meet.cpuMicrosPerFrame, 2)}×` +
      `, p99 ${fmt(node.p99 / meet.p99, 2)}×, peak RSS ${fmt(node.peakRssMiB / meet.peakRssMiB, 2)}×` +
      `; meet dropped ${meet.serverDropped} frames at full queues`,
  );
}
// A silent socket against the same scenario without it: what it costs the listeners and the
// server's memory, on meet and on the reference relay.
for (const row of rows.filter((r) => r.scenario.endsWith(":silent"))) {
  const twin = rows.find((r) => r.scenario === row.scenario.replace(":silent", ""));
  if (!twin) continue;
  for (const name of ["meet", "node"]) {
    const [with_, without] = [row[name], twin[name]];
    console.log(
      `${row.scenario.padEnd(9)} ${name === "meet" ? "meet" : "node-relay"}: a silent socket changes the listeners' p99 ${fmt(without.p99, 2)} → ${fmt(with_.p99, 2)} ms ` +
        `(${fmt(with_.p99 / without.p99, 2)}×), lost ${without.lost} → ${with_.lost}, RSS growth ${fmt(without.rssGrowthMiB, 1)} → ${fmt(with_.rssGrowthMiB, 1)} MiB` +
        (name === "meet" ? `; ${with_.serverDropped} frames dropped for it at its full queue` : ""),
    );
  }
}
const big = rows.find((r) => r.scenario === "1x50");
if (big) {
  const ok = (c) => (c ? "ok" : "MISSED");
  console.log("\ntargets (1x50):");
  console.log(`  CPU per frame ≥ 5× less than node-relay: ${fmt(big.node.cpuMicrosPerFrame / big.meet.cpuMicrosPerFrame, 2)}× ${ok(big.node.cpuMicrosPerFrame / big.meet.cpuMicrosPerFrame >= 5)}`);
  console.log(`  p99 < 20 ms: ${fmt(big.meet.p99, 2)} ms ${ok(big.meet.p99 < 20)}`);
  console.log(`  no lost frames: ${big.meet.lost} ${ok(big.meet.lost === 0)}`);
}
if (JSON_OUT) writeFileSync(JSON_OUT, JSON.stringify(rows, null, 2));
process.exit(0);
