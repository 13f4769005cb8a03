// A host and two students, each in their own Chromium with a fake microphone playing a tone,
// meet over WebRTC through the UI: everyone hears the others, the host's mutes and private
// talk act on what each browser receives (and the pages say so), and a recording made from
// the UI plays to its end in a student's page.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  startServer, school, browser, signedIn, toneWav, joinRoom, inbound, growth, until, sfuCounters,
  screenshot, call, axe,
} from "./harness.mjs";

let server, s, browsers = [], host, ana, bob, ids;
const HEARS = 1e-4; // energy growth over 1.5 s of a tone heard at -10 dBFS is ~1e-2; silence ~0

before(async () => {
  server = await startServer();
  s = await school(server, ["ana", "bob"], "Room");
  browsers = await Promise.all([toneWav(440), toneWav(660), toneWav(880)].map((w) => browser(w)));
  [host, ana, bob] = await Promise.all([
    signedIn(browsers[0], server.url, s.host),
    signedIn(browsers[1], server.url, s.students[0]),
    signedIn(browsers[2], server.url, s.students[1]),
  ]);
  ids = { host: s.host._id, ana: s.students[0]._id, bob: s.students[1]._id };
});
after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

const others = (me) => Object.entries(ids).filter(([n]) => n !== me);

test("three browsers hear each other over WebRTC, as the SFU counts", async () => {
  await joinRoom(host, s.meeting);
  const t0 = Date.now();
  await joinRoom(ana, s.meeting);
  await until("ana's first packet from the host", async () => (await inbound(ana))[ids.host]?.packets > 0);
  console.log(`time to first audio (click Join → first inbound packet): ${Date.now() - t0} ms`);
  await joinRoom(bob, s.meeting);
  for (const [name, page] of [["host", host], ["ana", ana], ["bob", bob]]) {
    await until(`${name} hears both others`, async () => {
      const g = await growth(page, 1000);
      return others(name).every(([, id]) => g[id]?.packets > 20 && g[id].energy > HEARS);
    });
  }
  await screenshot(host, "room-host-broadcast");
  assert.deepEqual(await axe(host), []);
  // The SFU's own counters: what each listener received was forwarded to it, and what each
  // speaker sent arrived.
  const got = { host: await inbound(host), ana: await inbound(ana), bob: await inbound(bob) };
  for (const [name, id] of Object.entries(ids)) {
    const c = await sfuCounters(server.url, s.meeting._id, id);
    const received = Object.values(got[name]).reduce((n, x) => n + x.packets, 0);
    assert.ok(c.packetsOut >= received && c.packetsOut - received < 0.1 * received + 200, `${name}: SFU out ${c.packetsOut}, browser in ${received}`);
    const heardOf = Math.max(...Object.values(got).map((g) => g[id]?.packets || 0));
    assert.ok(c.packetsIn >= heardOf && c.packetsIn - heardOf < 0.1 * heardOf + 200, `${name}: SFU in ${c.packetsIn}, heard ${heardOf}`);
  }
  for (const p of [host, ana, bob]) assert.deepEqual(p.errors, []);
});

test("the host mutes and unmutes a student from the UI", async () => {
  await host.getByRole("button", { name: `Mute ${s.students[0].username}` }).click();
  await ana.getByText("The host muted you").waitFor();
  await bob.locator(`li[data-user="${ids.ana}"]`).getByText("muted by the host").waitFor();
  await new Promise((r) => setTimeout(r, 500));
  for (const page of [host, bob]) assert.equal((await growth(page))[ids.ana].packets, 0);
  assert.ok((await growth(bob))[ids.host].energy > HEARS, "bob still hears the host");
  await host.getByRole("button", { name: `Unmute ${s.students[0].username}` }).click();
  await ana.getByText("The host unmuted you").waitFor();
  for (const page of [host, bob]) await until("ana heard again", async () => (await growth(page, 1000))[ids.ana].energy > HEARS);
});

test("a private talk from the UI: the third student hears neither, and every page says so", async () => {
  await host.getByRole("button", { name: `Private talk with ${s.students[0].username}` }).click();
  await host.getByText(`Private talk with ${s.students[0].username}: only you two hear each other.`).waitFor();
  await ana.getByText("Private talk with your host: only you two hear each other.").waitFor();
  await bob.getByText(`The host is in a private talk with ${s.students[0].username}: you hear nobody`).waitFor();
  await screenshot(bob, "room-student-outside-private-talk");
  await new Promise((r) => setTimeout(r, 500));
  const b = await growth(bob);
  assert.equal(b[ids.host].packets, 0, "bob receives nothing from the host");
  assert.equal(b[ids.ana].packets, 0, "bob receives nothing from ana");
  assert.ok((await growth(host))[ids.ana].energy > HEARS, "the host hears ana");
  assert.ok((await growth(ana))[ids.host].energy > HEARS, "ana hears the host");
  assert.equal((await growth(ana))[ids.bob].packets, 0, "ana does not hear bob");
  await host.getByRole("button", { name: "Back to everyone" }).click();
  await bob.getByText("Everyone hears everyone who is not muted.").waitFor();
  await until("bob hears both again", async () => {
    const g = await growth(bob, 1000);
    return g[ids.host].energy > HEARS && g[ids.ana].energy > HEARS;
  });
});

test("recorded from the UI, played to its end in a student's page", async () => {
  await host.getByRole("button", { name: "Start recording" }).click();
  for (const p of [host, ana, bob]) await p.locator("#recording").waitFor();
  await new Promise((r) => setTimeout(r, 5000));
  await host.getByRole("button", { name: "Stop recording" }).click();
  for (const p of [host, ana, bob]) await p.locator("#recording").waitFor({ state: "detached" });
  const rec = await until("the recording completed", async () => {
    const { recordings } = await call(server.url, s.host.token, "GET", "/api/host/recordings");
    return recordings.find((r) => r.status === "completed");
  });
  await ana.getByRole("link", { name: "Recordings" }).click();
  const ranges = [];
  ana.on("response", (r) => { if (r.url().includes("/audio")) ranges.push(r.status()); });
  const load = ana.getByRole("button", { name: `Load recording of ${s.meeting.topic}` });
  await load.click();
  // The button goes once the signed link is the player's source: a play() before that would be
  // interrupted by the player's load of it.
  await load.waitFor({ state: "detached" });
  const audio = ana.getByRole("region").or(ana.locator("audio[aria-label]")).first();
  const played = await audio.evaluate((el) => new Promise((resolve, reject) => {
    const a = /** @type {HTMLAudioElement} */ (el);
    const timer = setTimeout(() => reject(new Error(`not ended: at ${a.currentTime} of ${a.duration}`)), 30000);
    a.addEventListener("ended", () => { clearTimeout(timer); resolve(a.duration); });
    a.play().catch(reject);
  }));
  console.log(`recording: ${rec.duration} s in the API, ${played} s in the browser`);
  assert.ok(Math.abs(played - rec.duration) <= 0.05 * rec.duration, `played ${played} s of ${rec.duration} s`);
  // Seeking back to the middle plays from there (the file is fetched by byte ranges).
  const at = await audio.evaluate((el) => new Promise((resolve) => {
    const a = /** @type {HTMLAudioElement} */ (el);
    a.addEventListener("seeked", () => resolve(a.currentTime), { once: true });
    a.currentTime = a.duration / 2;
  }));
  assert.ok(Math.abs(at - played / 2) < 0.5, `seeked to ${at}`);
  assert.ok(ranges.includes(206), `range answers: ${ranges}`);
  await screenshot(ana, "student-recordings-played");
});

test("after its connection drops, a browser reconnects and is heard again", async () => {
  await bob.goto(server.url + "/#/student/meetings");
  await joinRoom(bob, s.meeting);
  await until("the host hears bob", async () => (await growth(host, 1000))[ids.bob]?.energy > HEARS);
  const before = await bob.evaluate(() => window.meetRoom.audio.pc);
  // The network goes: the socket's transport closes under the client, which reconnects.
  await bob.evaluate(() => window.meetRoom.socket.io.engine.close());
  await bob.getByText("Reconnected.").waitFor({ timeout: 20000 });
  await until("a new connection", async () => bob.evaluate((old) => window.meetRoom.audio.pc !== old && window.meetRoom.audio.pc.connectionState === "connected", before));
  await until("the host hears bob again", async () => (await growth(host, 1000))[ids.bob]?.energy > HEARS);
  await until("bob hears the host again", async () => (await growth(bob, 1000))[ids.host]?.energy > HEARS);
});

test("the host ends the meeting from the room, and every page says so", async () => {
  await joinRoom(ana, s.meeting); // she went to her recordings
  host.once("dialog", (d) => d.accept());
  await host.getByRole("button", { name: "End the meeting" }).click();
  for (const [name, p] of [["host", host], ["ana", ana], ["bob", bob]]) {
    await p.getByText("The meeting has ended.").waitFor({ timeout: 10000 }).catch(async (e) => {
      throw new Error(`${name}: ${e.message}\n${(await p.locator("main").innerText()).slice(0, 300)} | ${p.url()}`);
    });
  }
  const { meeting } = await call(server.url, s.host.token, "GET", `/api/meetings/${s.meeting._id}`);
  assert.equal(meeting.status, "ended");
  for (const p of [host, ana, bob]) assert.deepEqual(p.errors, []);
});
