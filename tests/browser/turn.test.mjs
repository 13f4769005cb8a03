// Behind a firewall that lets nothing through but a TURN server: two Chromiums allowed only
// relay candidates (`iceTransportPolicy: "relay"`) meet through Debian's coturn on loopback,
// with the time-limited credentials the server makes from the secret it shares with coturn
// (`[[media.ice_servers]]` with `secret`, coturn's `use-auth-secret`). Both hear each other, and
// each connection's selected candidate pair is a relayed one.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { startServer, school, browser, signedIn, toneWav, joinRoom, growth, until, call } from "./harness.mjs";

const HEARS = 1e-4;
const SECRET = "a-secret-shared-with-coturn";
// Every RTCPeerConnection the page makes may use relay candidates only.
const RELAY_ONLY = `{
  const Native = window.RTCPeerConnection;
  window.RTCPeerConnection = function (config) { return new Native({ ...config, iceTransportPolicy: "relay" }); };
  window.RTCPeerConnection.prototype = Native.prototype;
}`;

let turn, server, s, browsers = [], host, ana, ids, dir;

/** A UDP port nobody holds right now (coturn takes no port 0). */
async function freePort() {
  const sock = createSocket("udp4");
  await new Promise((r) => sock.bind(0, "127.0.0.1", r));
  const { port } = sock.address();
  await new Promise((r) => sock.close(r));
  return port;
}

/** coturn on 127.0.0.1:`port`, relaying on loopback; resolves once it serves. */
async function startTurn(port) {
  const child = spawn("turnserver", [
    "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", `--listening-port=${port}`,
    "--min-port=50000", "--max-port=50999",
    "--use-auth-secret", `--static-auth-secret=${SECRET}`, "--realm=meet.test", "--fingerprint",
    "--no-tls", "--no-dtls", "--no-cli", "--no-tcp-relay",
    // The server's media is on 127.0.0.1 here: coturn refuses loopback peers unless told.
    "--allow-loopback-peers",
    `--userdb=${path.join(dir, "turndb")}`, `--pidfile=${path.join(dir, "turn.pid")}`,
    "--log-file=stdout", "--simple-log", "--verbose",
  ], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`coturn did not start:\n${log}`)), 15000);
    const read = (chunk) => {
      log += chunk;
      if (log.includes("Total General servers")) { clearTimeout(timer); resolve(); }
    };
    child.stdout.on("data", read);
    child.stderr.on("data", read);
    child.on("exit", (code) => { clearTimeout(timer); reject(new Error(`coturn exited with ${code}:\n${log}`)); });
  });
  child.stdout.on("data", (chunk) => { log += chunk; });
  return {
    log: () => log,
    async stop() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** The types of the local and remote candidates of the page's selected pair. */
async function selectedPair(page) {
  return page.evaluate(async () => {
    const stats = await window.meetRoom.audio.pc.getStats();
    const all = [...stats.values()];
    const transport = all.find((s) => s.type === "transport" && s.selectedCandidatePairId);
    const pair = transport && stats.get(transport.selectedCandidatePairId);
    if (!pair) return null;
    return { local: stats.get(pair.localCandidateId)?.candidateType, remote: stats.get(pair.remoteCandidateId)?.candidateType };
  });
}

/** The page's ICE as it stands: the connection's states, its candidates and pairs. */
async function iceState(page) {
  return page.evaluate(async () => {
    const pc = window.meetRoom?.audio?.pc;
    if (!pc) return { transport: window.meetRoom?.transport ?? null };
    const out = { transport: window.meetRoom.transport, ice: pc.iceConnectionState, gathering: pc.iceGatheringState, candidates: [], pairs: [] };
    (await pc.getStats()).forEach((r) => {
      if (r.type === "local-candidate" || r.type === "remote-candidate") out.candidates.push(`${r.type} ${r.candidateType} ${r.address}:${r.port}`);
      if (r.type === "candidate-pair") out.pairs.push(`${r.state} nominated=${r.nominated} sent=${r.requestsSent} got=${r.responsesReceived}`);
    });
    return out;
  }).catch((e) => String(e));
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "meet-turn-"));
  const port = await freePort();
  turn = await startTurn(port);
  const config = path.join(dir, "meet.toml");
  writeFileSync(config, `[[media.ice_servers]]\nurls = ["turn:127.0.0.1:${port}?transport=udp"]\nsecret = "${SECRET}"\nttl_seconds = 600\n`);
  server = await startServer({ MEET_CONFIG: config });
  s = await school(server, ["ana"], "Relayed");
  browsers = await Promise.all([toneWav(440), toneWav(660)].map((w) => browser(w)));
  [host, ana] = await Promise.all([
    signedIn(browsers[0], server.url, s.host, { init: RELAY_ONLY }),
    signedIn(browsers[1], server.url, s.students[0], { init: RELAY_ONLY }),
  ]);
  ids = { host: s.host._id, ana: s.students[0]._id };
});
after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
  await turn?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("two browsers allowed only TURN relay candidates hear each other through coturn", async () => {
  // The join answer hands out the TURN server with credentials made from the shared secret.
  const joined = await call(server.url, s.students[0].token, "POST", "/api/meetings/join", { meetingId: s.meeting._id });
  const [ice] = joined.iceServers;
  assert.match(ice.username, new RegExp(`^\\d+:${ids.ana}$`));
  assert.ok(ice.credential);

  for (const [name, page] of [["host", host], ["ana", ana]]) {
    await joinRoom(page, s.meeting).catch(async (e) => {
      throw new Error(`${name} did not connect over WebRTC: ${e.message}\nICE: ${JSON.stringify(await iceState(page))}\ncoturn: ${turn.log().slice(-2000)}`);
    });
  }
  for (const [name, page, other] of [["host", host, ids.ana], ["ana", ana, ids.host]]) {
    await until(`${name} hears the other through the relay`, async () => {
      const g = await growth(page, 1000);
      return g[other]?.packets > 20 && g[other].energy > HEARS;
    });
    const pair = await selectedPair(page);
    assert.equal(pair?.local, "relay", `${name}'s selected pair: ${JSON.stringify(pair)}`);
  }
  // coturn carried it: allocations were made for both.
  assert.ok((turn.log().match(/ALLOCATE processed, success/g) || []).length >= 2, turn.log().slice(-3000));
  for (const p of [host, ana]) assert.deepEqual(p.errors, []);
});
