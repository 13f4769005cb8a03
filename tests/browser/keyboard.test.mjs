// Keyboard only: sign in, open a meeting, join, mute oneself, leave — Tab, Enter and Space,
// never the mouse; each control reached is announced by its accessible name.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, school, browser, signedIn, call } from "./harness.mjs";

let server, s, b;
before(async () => {
  server = await startServer();
  s = await school(server, ["ana"], "Keys");
  // The host has started the meeting.
  await call(server.url, s.host.token, "POST", `/api/meetings/${s.meeting._id}/join`, {});
  b = await browser();
});
after(async () => { await b?.close(); await server?.stop(); });

/** Presses Tab until the focused element's accessible text matches `name`. */
async function tabTo(page, name, limit = 40) {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const focused = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el) return "";
      const label = el.getAttribute("aria-label") || (el.labels && el.labels[0]?.textContent) || el.textContent || "";
      return label.trim();
    });
    if (name instanceof RegExp ? name.test(focused) : focused === name) return;
  }
  throw new Error(`${name} cannot be reached with Tab`);
}

test("a microphone that cannot be opened is said in a sentence, and the student is not left in", async () => {
  const page = await signedIn(b, server.url, s.students[0], {
    init: "navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));",
  });
  await page.goto(server.url + `/#/room/${s.meeting._id}`);
  await page.getByRole("button", { name: `Join ${s.meeting.topic}` }).click();
  await page.getByText("The microphone could not be opened (NotAllowedError)").waitFor();
  await page.getByRole("button", { name: `Join ${s.meeting.topic}` }).waitFor();
  const { participants } = await call(server.url, s.host.token, "GET", `/api/meetings/participants/${s.meeting._id}`);
  assert.equal(participants.find((p) => p._id === s.students[0]._id)?.online, false);
  await page.context().close();
});

test("on a page that is not secure, the room says why the microphone cannot be used", async () => {
  const page = await signedIn(b, server.url, s.students[0], {
    init: "Object.defineProperty(window, 'isSecureContext', { value: false });",
  });
  await page.goto(server.url + `/#/room/${s.meeting._id}`);
  await page.getByRole("button", { name: `Join ${s.meeting.topic}` }).click();
  await page.getByText("The microphone can only be used on a secure page").waitFor();
  await page.getByRole("button", { name: `Join ${s.meeting.topic}` }).waitFor();
  await page.context().close();
});

test("sign in, join, mute oneself and leave with the keyboard alone", async () => {
  const page = await signedIn(b, server.url, null);
  const student = s.students[0];
  await tabTo(page, /^Username/);
  await page.keyboard.type(student.username);
  await tabTo(page, /^Password/);
  await page.keyboard.type(student.password);
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Meetings" }).waitFor();
  await tabTo(page, `Join ${s.meeting.topic}`);
  await page.keyboard.press("Enter");
  await page.getByRole("button", { name: `Join ${s.meeting.topic}` }).waitFor();
  await tabTo(page, `Join ${s.meeting.topic}`);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => window.meetRoom?.transport === "webrtc", null, { timeout: 20000 });
  await tabTo(page, "Mute myself");
  await page.keyboard.press("Space");
  await page.getByRole("button", { name: "Unmute myself" }).waitFor();
  assert.equal(await page.evaluate(() => window.meetRoom.micMuted), true);
  await tabTo(page, "Leave");
  await page.keyboard.press("Enter");
  await page.getByRole("heading", { name: "Meetings" }).waitFor();
  const { participants } = await call(server.url, s.host.token, "GET", `/api/meetings/participants/${s.meeting._id}`);
  assert.equal(participants.find((p) => p._id === student._id)?.online, false, "ana has left");
  assert.deepEqual(page.errors, []);
});
