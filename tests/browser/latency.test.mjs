// Measures, does not judge: the mouth-to-ear delay through the SFU on loopback. The host's fake
// microphone plays a click every second; the host's page notes when each click leaves its own
// microphone track, the student's page when it arrives in the host's remote stream (both on the
// same machine's clock). Reported in the test output.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, school, browser, signedIn, clickWav, joinRoom, inbound, until } from "./harness.mjs";

let server, s, browsers = [];
before(async () => {
  server = await startServer();
  s = await school(server, ["ana"], "Latency");
  browsers = [await browser(clickWav()), await browser()];
});
after(async () => {
  for (const b of browsers) await b.close();
  await server?.stop();
});

/** Starts noting, in the page, the wall-clock times at which `stream` gets loud after silence. */
const DETECT = (source) => {
  const stream = source === "mic" ? window.meetRoom.mic
    : document.querySelector(`audio[data-user="${source}"]`).srcObject;
  const ctx = new AudioContext();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 256;
  ctx.createMediaStreamSource(stream).connect(analyser);
  const data = new Float32Array(analyser.fftSize);
  window.clicks = [];
  let quietSince = 0;
  setInterval(() => {
    analyser.getFloatTimeDomainData(data);
    let peak = 0;
    for (const v of data) peak = Math.max(peak, Math.abs(v));
    const now = performance.timeOrigin + performance.now();
    if (peak > 0.1) {
      if (quietSince && now - quietSince > 300) window.clicks.push(now);
      quietSince = 0;
    } else if (!quietSince) quietSince = now;
  }, 2);
};

test("mouth-to-ear delay of a browser through the SFU on loopback", async () => {
  const [host, ana] = [await signedIn(browsers[0], server.url, s.host), await signedIn(browsers[1], server.url, s.students[0])];
  await joinRoom(host, s.meeting);
  await joinRoom(ana, s.meeting);
  await until("ana receives the host", async () => (await inbound(ana))[s.host._id]?.packets > 50);
  await ana.waitForSelector(`audio[data-user="${s.host._id}"]`, { state: "attached" });
  await host.evaluate(DETECT, "mic");
  await ana.evaluate(DETECT, s.host._id);
  await new Promise((r) => setTimeout(r, 8000));
  const sent = await host.evaluate(() => window.clicks);
  const heard = await ana.evaluate(() => window.clicks);
  const delays = [];
  for (const t of sent) {
    const arrival = heard.find((h) => h > t && h - t < 800);
    if (arrival) delays.push(arrival - t);
  }
  delays.sort((a, b) => a - b);
  const median = delays[Math.floor(delays.length / 2)];
  console.log(`mouth-to-ear (capture track → remote stream), ${delays.length} clicks: median ${median?.toFixed(0)} ms, min ${delays[0]?.toFixed(0)} ms, max ${delays.at(-1)?.toFixed(0)} ms`);
  assert.ok(delays.length >= 3, `clicks sent ${sent.length}, heard ${heard.length}`);
});
