// Where WebRTC cannot connect, the room falls back to the Socket.IO relay, and the bridge lets
// both paths hear each other: a host and a student on WebRTC, a student whose browser has no
// WebRTC (forced onto the relay), and a script speaking the original's relay protocol.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import {
  startServer, school, browser, signedIn, toneWav, joinRoom, growth, until, screenshot, call,
} from "./harness.mjs";

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), "../clients/package.json"));
const { io } = require("socket.io-client");

const NO_WEBRTC = "delete window.RTCPeerConnection; delete window.webkitRTCPeerConnection;";
const HEARS = 1e-4;
let server, s, browsers = [], host, ana, bob, carl, ids;

/** What bob's relay player received, per speaker, over `ms`. */
async function relayGrowth(page, ms = 1500) {
  const read = () => page.evaluate(() => Object.fromEntries([...window.meetRoom.audio.heard].map(([k, v]) => [k, { ...v }])));
  const a = await read();
  await new Promise((r) => setTimeout(r, ms));
  const b = await read();
  const out = {};
  for (const [id, v] of Object.entries(b)) out[id] = { frames: v.frames - (a[id]?.frames || 0), energy: v.energy - (a[id]?.energy || 0) };
  return out;
}

/** A relay client as the original's were: f32 PCM frames at 48 kHz, `audio-broadcast` in. */
function originalClient(url, token, meetingId) {
  const socket = io(url, { path: "/ws", auth: { token, meetingId }, transports: ["websocket"] });
  const heard = {};
  socket.on("audio-broadcast", ({ userId, audioData }) => {
    const bytes = Uint8Array.from(audioData);
    const pcm = new Int16Array(bytes.buffer, 0, bytes.byteLength >> 1);
    let e = 0;
    for (const v of pcm) e += (v / 32768) ** 2;
    heard[userId] = heard[userId] || { frames: 0, energy: 0 };
    heard[userId].frames++;
    heard[userId].energy += e / 48000;
  });
  let phase = 0;
  const timer = setInterval(() => {
    const f = new Float32Array(960);
    for (let i = 0; i < f.length; i++) f[i] = 0.3 * Math.sin((2 * Math.PI * 550 * phase++) / 48000);
    socket.emit("broadcast-audio", { audioData: Buffer.from(f.buffer), format: "f32", sampleRate: 48000 });
  }, 20);
  return { socket, heard, close: () => { clearInterval(timer); socket.close(); } };
}

before(async () => {
  server = await startServer();
  s = await school(server, ["ana", "bob", "carl"], "Bridge");
  browsers = await Promise.all([toneWav(440), toneWav(660), toneWav(880)].map((w) => browser(w)));
  [host, ana, bob] = await Promise.all([
    signedIn(browsers[0], server.url, s.host),
    signedIn(browsers[1], server.url, s.students[0]),
    signedIn(browsers[2], server.url, s.students[1], { init: NO_WEBRTC }),
  ]);
  ids = { host: s.host._id, ana: s.students[0]._id, bob: s.students[1]._id, carl: s.students[2]._id };
});
after(async () => {
  carl?.close();
  for (const b of browsers) await b.close();
  await server?.stop();
});

test("a browser without WebRTC uses the relay, and hears and is heard by WebRTC browsers", async () => {
  await joinRoom(host, s.meeting);
  await joinRoom(ana, s.meeting);
  await joinRoom(bob, s.meeting, "relay");
  await bob.getByText("audio: relay").waitFor();
  await bob.getByText("audio goes through the server's relay instead").waitFor();
  await until("bob hears the host and ana through the bridge", async () => {
    const g = await relayGrowth(bob, 1000);
    return g[ids.host]?.energy > HEARS && g[ids.ana]?.energy > HEARS;
  });
  for (const [name, page] of [["host", host], ["ana", ana]]) {
    await until(`${name} hears bob through the bridge`, async () => (await growth(page, 1000))[ids.bob]?.energy > HEARS);
  }
  await screenshot(bob, "room-student-on-the-relay");
  const metrics = await (await fetch(server.url + "/metrics")).text();
  const count = (name) => Number(metrics.match(new RegExp(`^${name} (\\d+)$`, "m"))?.[1] || 0);
  assert.ok(count("meet_bridge_packets_to_webrtc_total") > 50);
  assert.ok(count("meet_bridge_packets_to_relay_total") > 50);
  for (const p of [host, ana, bob]) assert.deepEqual(p.errors, []);
});

test("a client of the original's relay protocol hears the browsers, and they hear it", async () => {
  const t = await call(server.url, null, "POST", "/api/auth/login", { username: s.students[2].username, password: "student-password" });
  carl = originalClient(server.url, t.token, s.meeting._id);
  await until("carl hears the WebRTC host and the relay browser", async () =>
    carl.heard[ids.host]?.energy > HEARS && carl.heard[ids.bob]?.energy > HEARS);
  await until("the host hears carl", async () => (await growth(host, 1000))[ids.carl]?.energy > HEARS);
  await until("bob hears carl", async () => (await relayGrowth(bob, 1000))[ids.carl]?.energy > HEARS);
});

test("mutes and private talks hold across the bridge", async () => {
  // The relay student muted by the host: the WebRTC browsers stop receiving them.
  await host.getByRole("button", { name: `Mute ${s.students[1].username}` }).click();
  await bob.getByText("The host muted you").waitFor();
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await growth(ana))[ids.bob].packets, 0, "ana receives nothing from muted bob");
  await host.getByRole("button", { name: `Unmute ${s.students[1].username}` }).click();
  await until("ana hears bob again", async () => (await growth(ana, 1000))[ids.bob].energy > HEARS);
  // A private talk with the relay student: ana and carl hear neither of the pair.
  await host.getByRole("button", { name: `Private talk with ${s.students[1].username}` }).click();
  await bob.getByText("Private talk with your host").waitFor();
  await new Promise((r) => setTimeout(r, 500));
  const a = await growth(ana);
  assert.equal(a[ids.bob].packets, 0, "ana receives nothing from bob");
  assert.equal(a[ids.host].packets, 0, "ana receives nothing from the host");
  const before = { ...carl.heard[ids.host] };
  const b = await relayGrowth(bob);
  assert.ok(b[ids.host]?.energy > HEARS, "bob hears the host");
  assert.ok(!(b[ids.ana]?.frames > 0) && !(b[ids.carl]?.frames > 0), "bob hears only the host");
  assert.equal(carl.heard[ids.host].frames, before.frames, "carl hears nothing from the host");
  assert.ok((await growth(host))[ids.bob].energy > HEARS, "the host hears bob");
  await host.getByRole("button", { name: "Back to everyone" }).click();
  await until("ana hears bob again", async () => (await growth(ana, 1000))[ids.bob].energy > HEARS);
});
