// What the browser tests share: the real `meet` binary on loopback, the API to set up people and
// meetings, and Debian's Chromium driven by playwright-core, one browser per participant (the
// fake microphone's WAV file is a browser-wide flag).

import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, appendFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), "../clients/package.json"));
const { chromium } = require("playwright-core");
export const AXE_SOURCE = require("node:fs").readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const OUTPUT = process.env.MEET_BROWSER_OUTPUT || path.join(ROOT, "target/browser");
// TEST_LOG=FILE: every server's log and every page's console are appended there (with
// TEST_LOG_LEVEL, the server's logging level), to read after a failure.
const TEST_LOG = process.env.TEST_LOG;
const trace = (line) => { if (TEST_LOG) appendFileSync(TEST_LOG, `${new Date().toISOString()} ${line}\n`); };
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Starts `meet serve` on 127.0.0.1:0 with an in-memory database; resolves once it listens. */
export async function startServer(extraEnv = {}) {
  const bin = process.env.MEET_BIN || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, "target"), "debug/meet");
  const dir = mkdtempSync(path.join(tmpdir(), "meet-browser-"));
  const child = spawn(bin, ["serve", "--data-dir", dir], {
    env: {
      // Every MEET_* variable is a setting to the server: the tests' own (MEET_BIN...) stay out.
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MEET_"))),
      MEET_CONFIG: "/dev/null",
      MEET_DATABASE__URL: "mem://",
      MEET_SERVER__LISTEN: "127.0.0.1:0",
      // Loopback, unless `tests/run` gives the machine's address (Firefox).
      MEET_MEDIA__BIND: process.env.TEST_MEDIA_BIND || '["127.0.0.1"]',
      MEET_MEDIA__UDP_PORT: "0",
      MEET_AUTH__ARGON2_MEMORY_KIB: "1024",
      MEET_AUTH__ARGON2_ITERATIONS: "1",
      MEET_HTTP__RATE_LIMIT__LOGIN_FAILURES: "1000",
      MEET_LOGGING__LEVEL: process.env.TEST_LOG_LEVEL || "warn,meet::app=info",
      ...extraEnv,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`meet did not start:\n${log}`)), 30000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      trace(`server: ${String(chunk).trimEnd()}`);
      const pw = log.match(/password: (\S+)/), addr = log.match(/meet is listening addr=(\S+)/);
      if (pw && addr) { clearTimeout(timer); resolve({ password: pw[1], addr: addr[1] }); }
    });
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`meet exited with ${code}:\n${log}`)); });
  });
  const { password, addr } = await ready;
  const url = `http://${addr}`;
  return {
    url,
    log: () => log,
    admin: await login(url, "admin", password),
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A REST call as the holder of `token`; throws with the API's message on an error answer. */
export async function call(url, token, method, route, body) {
  const res = await fetch(url + route, {
    method,
    headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${data.code}: ${data.message}`);
  return data;
}

export async function login(url, username, password) {
  const r = await call(url, null, "POST", "/api/auth/login", { username, password });
  return { ...r, password };
}

/** A host with `students` students and one meeting: their sessions and the meeting. */
export async function school(server, students = ["ana", "bob"], topic = "Algebra") {
  const tag = Math.random().toString(36).slice(2, 7);
  const hostName = `host-${tag}`;
  await call(server.url, server.admin.token, "POST", "/api/admin/hosts", { username: hostName, password: "host-password" });
  const host = await login(server.url, hostName, "host-password");
  const people = [];
  for (const s of students) {
    const name = `${s}-${tag}`;
    await call(server.url, host.token, "POST", "/api/host/students", { username: name, password: "student-password" });
    people.push(await login(server.url, name, "student-password"));
  }
  const { meeting } = await call(server.url, host.token, "POST", "/api/meetings/create", { topic: `${topic} ${tag}` });
  return { host, students: people, meeting };
}

/** Writes a mono 16-bit 48 kHz WAV of `sample(i)` (-1..1) for the fake microphone (which loops it). */
function writeWav(name, seconds, sample) {
  const rate = 48000, n = rate * seconds;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write("RIFF", 0); buf.writeUInt32LE(36 + n * 2, 4); buf.write("WAVE", 8);
  buf.write("fmt ", 12); buf.writeUInt32LE(16, 16); buf.writeUInt16LE(1, 20); buf.writeUInt16LE(1, 22);
  buf.writeUInt32LE(rate, 24); buf.writeUInt32LE(rate * 2, 28); buf.writeUInt16LE(2, 32); buf.writeUInt16LE(16, 34);
  buf.write("data", 36); buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) buf.writeInt16LE(Math.round(sample(i, rate) * 32767), 44 + i * 2);
  const dir = path.join(OUTPUT, "wav");
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, name);
  writeFileSync(file, buf);
  return file;
}

/** A tone at `hz`. */
export function toneWav(hz, seconds = 10, amplitude = 0.3) {
  return writeWav(`tone-${hz}.wav`, seconds, (i, rate) => Math.sin((2 * Math.PI * hz * i) / rate) * amplitude);
}

/** Silence with a 30 ms 1 kHz burst every second (clicks). */
export function clickWav(seconds = 10) {
  return writeWav("clicks.wav", seconds, (i, rate) => (i % rate < rate * 0.03 ? Math.sin((2 * Math.PI * 1000 * i) / rate) * 0.8 : 0));
}

/** One Chromium, headless, with a fake microphone playing `wav` (or a beep when absent). */
export async function browser(wav) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
      ...(wav ? [`--use-file-for-fake-audio-capture=${wav}`] : []),
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
}

/**
 * A page signed in as `who` (through the sign-in form), with every console error and page
 * error collected in `page.errors`. `init` runs before the client's scripts.
 */
export async function signedIn(b, url, who, { init, viewport } = {}) {
  const context = await b.newContext({ viewport: viewport || { width: 1100, height: 800 } });
  await context.grantPermissions(["microphone"], { origin: url });
  const page = await context.newPage();
  page.errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") page.errors.push(m.text());
    trace(`${who?.username || "page"} ${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => page.errors.push(String(e)));
  if (init) await page.addInitScript(init);
  await page.goto(url + "/");
  if (who) {
    await page.getByLabel("Username").fill(who.username);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  }
  return page;
}

/** axe-core in the page (served from the page's own origin, so the CSP stays as it is). */
export async function axe(page) {
  await page.route("**/__axe.js", (route) => route.fulfill({ body: AXE_SOURCE, contentType: "text/javascript" }));
  await page.addScriptTag({ url: "/__axe.js" });
  const result = await page.evaluate(async () => await /** @type {any} */ (window).axe.run(document, { resultTypes: ["violations"] }));
  return result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
}

/** Where the screenshot `name` goes (the folder is made if need be). */
export function screenshotPath(name) {
  mkdirSync(path.join(OUTPUT, "screenshots"), { recursive: true });
  return path.join(OUTPUT, "screenshots", `${name}.png`);
}

export async function screenshot(page, name) {
  await page.screenshot({ path: screenshotPath(name), fullPage: true });
}

/** Joins the meeting of `meeting` from its room page and waits for the audio to be up. */
export async function joinRoom(page, meeting, transport = "webrtc") {
  await page.goto(page.url().split("#")[0] + `#/room/${meeting._id}`);
  await page.getByRole("button", { name: `Join ${meeting.topic}` }).click();
  await page.waitForFunction((t) => window.meetRoom?.transport === t, transport, { timeout: 20000 });
}

/**
 * What this page's WebRTC connection received, per speaker: packets and total audio energy.
 * The speaker of each m-line is the stream id (the userId) of its `a=msid` in the server's last
 * description: a line the server reuses for another speaker keeps the track the browser made
 * for it first, so the track id cannot say.
 */
export async function inbound(page) {
  return page.evaluate(async () => {
    const pc = window.meetRoom?.audio?.pc;
    const out = {};
    if (!pc?.remoteDescription) return out;
    const speakers = {};
    for (const section of pc.remoteDescription.sdp.split(/\r?\nm=/).slice(1)) {
      const mid = section.match(/^a=mid:(\S+)/m)?.[1];
      const stream = section.match(/^a=msid:(\S+)/m)?.[1];
      if (mid !== undefined && stream) speakers[mid] = stream;
    }
    const stats = await pc.getStats();
    stats.forEach((s) => {
      const user = s.type === "inbound-rtp" && s.kind === "audio" && speakers[s.mid];
      if (!user) return;
      out[user] = out[user] || { packets: 0, energy: 0 };
      out[user].packets += s.packetsReceived || 0;
      out[user].energy += s.totalAudioEnergy || 0;
    });
    return out;
  });
}

/** Polls `fn` until it returns a truthy value (the value), or fails after `ms` with `what`. */
export async function until(what, fn, ms = 20000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
}

/** The energy of each speaker at this page grows over `ms`: {userId: growth}. */
export async function growth(page, ms = 1500) {
  const a = await inbound(page);
  await new Promise((r) => setTimeout(r, ms));
  const b = await inbound(page);
  const out = {};
  for (const [id, s] of Object.entries(b)) out[id] = { energy: s.energy - (a[id]?.energy || 0), packets: s.packets - (a[id]?.packets || 0) };
  return out;
}

/** The SFU's counters of one participant, from /metrics. */
export async function sfuCounters(url, meetingId, userId) {
  const text = await (await fetch(url + "/metrics")).text();
  const get = (name) => {
    const m = text.match(new RegExp(`^${name}\\{meeting="${meetingId}",user="${userId}"\\} (\\S+)$`, "m"));
    return m ? Number(m[1]) : 0;
  };
  return { packetsIn: get("meet_sfu_participant_packets_in_total"), packetsOut: get("meet_sfu_participant_packets_out_total") };
}
