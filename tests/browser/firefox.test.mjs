// Firefox too: Debian's firefox-esr, driven over WebDriver BiDi by puppeteer-core (Playwright
// drives only its own patched Firefox), joins a meeting with a host in Chromium; each hears the
// other over WebRTC.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";
import { startServer, school, browser, signedIn, toneWav, joinRoom, growth, until, screenshotPath } from "./harness.mjs";

const require = createRequire(path.join(path.dirname(fileURLToPath(import.meta.url)), "../clients/package.json"));
const puppeteer = require("puppeteer-core");
const FIREFOX = process.env.FIREFOX || "/usr/bin/firefox-esr";
const HEARS = 1e-4;

let server, s, chromium, firefox, host, fox;
const errors = [];

before(async () => {
  assert.ok(existsSync(FIREFOX), `${FIREFOX} is missing (tests/run installs firefox-esr)`);
  server = await startServer();
  s = await school(server, ["fox"], "Firefox");
  chromium = await browser(toneWav(440));
  host = await signedIn(chromium, server.url, s.host);
  firefox = await puppeteer.launch({
    browser: "firefox",
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      // A fake microphone (a tone), no permission prompt, ICE on loopback with plain addresses.
      "media.navigator.streams.fake": true,
      "media.navigator.permission.disabled": true,
      "media.peerconnection.ice.loopback": true,
      "media.peerconnection.ice.obfuscate_host_addresses": false,
      "media.autoplay.default": 0,
    },
  });
  fox = await firefox.newPage();
  fox.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  fox.on("pageerror", (e) => errors.push(String(e)));
});
after(async () => {
  await firefox?.close();
  await chromium?.close();
  await server?.stop();
});

test("a student in Firefox and a host in Chromium hear each other over WebRTC", async () => {
  await joinRoom(host, s.meeting);
  const student = s.students[0];
  await fox.goto(server.url + "/");
  await fox.waitForSelector("input[name=username]");
  await fox.type("input[name=username]", student.username);
  await fox.type("input[name=password]", student.password);
  await fox.click("button[type=submit]");
  await fox.waitForFunction(() => [...document.querySelectorAll("button")].some((b) => b.textContent === "Sign out"));
  await fox.goto(server.url + `/#/room/${s.meeting._id}`);
  await fox.waitForSelector("#join");
  await fox.click("#join");
  await fox.waitForFunction(() => window.meetRoom?.transport === "webrtc", { timeout: 20000 });
  const received = () => fox.evaluate(async () => {
    let n = 0;
    (await window.meetRoom.audio.pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp") n += r.packetsReceived || 0; });
    return n;
  });
  await until("Firefox receives the host", async () => {
    const a = await received();
    await new Promise((r) => setTimeout(r, 1000));
    return (await received()) - a > 20;
  });
  await until("the host hears Firefox", async () => (await growth(host, 1000))[student._id]?.energy > HEARS);
  await fox.screenshot({ path: screenshotPath("firefox-student-room") });
  assert.deepEqual(errors, []);
});
