// Every page renders for its role: no console or page errors, a screenshot of each, and no
// serious accessibility violations from axe-core; at a desktop and a phone width.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startServer, school, browser, signedIn, axe, screenshot, call } from "./harness.mjs";

let server, b, s;
before(async () => {
  server = await startServer();
  b = await browser();
  s = await school(server);
  // Something in every list: a past meeting with a recording, a disabled student.
  const past = await call(server.url, s.host.token, "POST", "/api/meetings/create", { topic: "Past lesson" });
  await call(server.url, s.host.token, "POST", `/api/meetings/${past.meeting._id}/end`, {});
  const carl = await call(server.url, s.host.token, "POST", "/api/host/students", { username: "carl-disabled", password: "student-password" });
  await call(server.url, s.host.token, "PUT", `/api/host/students/${carl.data.student._id}`, { isActive: false });
});
after(async () => { await b?.close(); await server?.stop(); });

async function check(page, name) {
  await page.waitForLoadState("networkidle");
  await screenshot(page, name);
  const violations = await axe(page);
  assert.deepEqual(violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target).join(", ")})`), [], `${name}: axe`);
  assert.deepEqual(page.errors, [], `${name}: console errors`);
}

for (const [width, height, tag] of [[1100, 800, "desktop"], [390, 844, "phone"]]) {
  test(`the pages of each role render (${tag})`, async () => {
    const viewport = { width, height };
    const anon = await signedIn(b, server.url, null, { viewport });
    await anon.getByRole("heading", { name: "Sign in" }).waitFor();
    await check(anon, `${tag}-signin`);
    // A wrong password: the API's sentence, shown as it is.
    await anon.getByLabel("Username").fill("nobody");
    await anon.getByLabel("Password").fill("wrong-password");
    await anon.getByRole("button", { name: "Sign in" }).click();
    await anon.getByText("Invalid username or password", { exact: false }).waitFor();
    anon.errors = anon.errors.filter((e) => !e.includes("401"));
    await check(anon, `${tag}-signin-error`);

    const admin = await signedIn(b, server.url, server.admin, { viewport });
    await admin.getByRole("heading", { name: "Hosts" }).waitFor();
    await check(admin, `${tag}-admin-hosts`);
    await admin.getByRole("link", { name: "Server" }).click();
    await admin.getByText("live connections").waitFor();
    await check(admin, `${tag}-admin-stats`);
    await admin.getByRole("link", { name: "Change password" }).click();
    await admin.getByRole("heading", { name: "Change password" }).waitFor();
    await check(admin, `${tag}-change-password`);

    const host = await signedIn(b, server.url, s.host, { viewport });
    await host.getByRole("heading", { name: "Meetings" }).waitFor();
    await host.getByText("Past lesson").waitFor();
    await check(host, `${tag}-host-meetings`);
    await host.getByRole("link", { name: "Students" }).click();
    await host.getByRole("cell", { name: "carl-disabled", exact: true }).waitFor();
    await check(host, `${tag}-host-students`);
    await host.getByRole("link", { name: "Recordings" }).click();
    await host.getByRole("heading", { name: "Recordings" }).waitFor();
    await check(host, `${tag}-host-recordings`);
    await host.goto(server.url + `/#/room/${s.meeting._id}`);
    await host.getByRole("button", { name: `Join ${s.meeting.topic}` }).waitFor();
    await check(host, `${tag}-host-room-before-joining`);

    const student = await signedIn(b, server.url, s.students[0], { viewport });
    await student.getByRole("heading", { name: "Meetings" }).waitFor();
    await check(student, `${tag}-student-meetings`);
    await student.getByRole("link", { name: "Recordings" }).click();
    await student.getByRole("heading", { name: "Your private talks" }).waitFor();
    await check(student, `${tag}-student-recordings`);
    for (const p of [anon, admin, host, student]) await p.context().close();
  });
}

test("the client's files are compressed, tagged, and need nothing from elsewhere", async () => {
  const context = await b.newContext();
  const page = await context.newPage();
  const external = [];
  const sizes = [];
  page.on("request", (r) => { if (!r.url().startsWith(server.url)) external.push(r.url()); });
  page.on("requestfinished", (r) => sizes.push(r.sizes().then((z) => [r.url(), z.responseBodySize + z.responseHeadersSize])));
  await page.goto(server.url + "/");
  await page.getByRole("heading", { name: "Sign in" }).waitFor();
  await page.waitForLoadState("networkidle");
  const all = await Promise.all(sizes);
  const bytes = all.filter(([u]) => !u.includes("socket.io")).reduce((n, [, z]) => n + z, 0);
  const sio = all.filter(([u]) => u.includes("socket.io")).reduce((n, [, z]) => n + z, 0);
  assert.deepEqual(external, []);
  const res = await fetch(server.url + "/js/app.js", { headers: { "Accept-Encoding": "gzip" } });
  assert.equal(res.headers.get("content-encoding"), "gzip");
  assert.match(res.headers.get("content-type"), /^text\/javascript/);
  const etag = res.headers.get("etag");
  assert.ok(etag);
  const again = await fetch(server.url + "/js/app.js", { headers: { "If-None-Match": etag } });
  assert.equal(again.status, 304);
  assert.match(res.headers.get("content-security-policy"), /default-src 'self'/);
  console.log(`page weight on first load: ${bytes} bytes compressed in ${all.length - 1} files, plus socket.io ${sio} bytes`);
  assert.ok(bytes > 5000 && bytes < 150 * 1024, `first load is ${bytes} bytes`);
  await context.close();
});

test("a page left while it still loads does not draw over the next one", async () => {
  const page = await signedIn(b, server.url, s.students[0]);
  // The meetings page's request answers late; meanwhile the student follows a link to the room.
  let release = () => {};
  const held = new Promise((r) => { release = r; });
  let answered = () => {};
  const late = new Promise((r) => { answered = r; });
  await page.route("**/api/student/info", async (route) => {
    await held;
    await route.continue();
    answered();
  });
  await page.evaluate(() => { location.hash = "#/recordings"; });
  await page.getByRole("heading", { name: "Recordings" }).waitFor();
  await page.evaluate(() => { location.hash = "#/student/meetings"; });
  await page.evaluate((id) => { location.hash = `#/room/${id}`; }, s.meeting._id);
  const join = page.getByRole("button", { name: `Join ${s.meeting.topic}` });
  await join.waitFor();
  release();
  await late;
  await page.waitForLoadState("networkidle");
  assert.equal(await join.isVisible(), true, "the meetings page replaced the room");
  assert.equal(await page.getByRole("heading", { level: 1 }).innerText(), s.meeting.topic);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
