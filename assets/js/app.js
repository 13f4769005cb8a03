// The web client's entry: the session, the navigation for each role, and the hash routes.

import { api, session, setSession } from "./api.js";
import { h, nextScreen, notify } from "./dom.js";
import { signIn, changePassword } from "./ui/signin.js";
import { hosts, stats } from "./ui/admin.js";
import { students, meetings } from "./ui/host.js";
import { studentMeetings } from "./ui/student.js";
import { recordings } from "./ui/recordings.js";
import { room } from "./ui/room.js";

const NAV = {
  admin: [["#/admin/hosts", "Hosts"], ["#/admin/stats", "Server"]],
  host: [["#/host/meetings", "Meetings"], ["#/host/students", "Students"], ["#/recordings", "Recordings"]],
  student: [["#/student/meetings", "Meetings"], ["#/recordings", "Recordings"]],
};
const HOME = { admin: "#/admin/hosts", host: "#/host/meetings", student: "#/student/meetings" };

/** The screen for a route, given the role; `null` when the route is not for that role. */
function screen(path, role) {
  const [, a, b] = path.split("/");
  const routes = {
    "password": () => changePassword(),
    "admin/hosts": role === "admin" && (() => hosts()),
    "admin/stats": role === "admin" && (() => stats()),
    "host/students": role === "host" && (() => students()),
    "host/meetings": role === "host" && (() => meetings()),
    "student/meetings": role === "student" && (() => studentMeetings()),
    "recordings": role !== "admin" && (() => recordings(role)),
  };
  if (a === "room" && b && role !== "admin") return () => room(b, role);
  return routes[b ? `${a}/${b}` : a] || null;
}

let leaving = null;

/** A screen may register what to do when the user navigates away (the room leaves). */
export function onLeave(fn) { leaving = fn; }

async function render() {
  nextScreen();
  if (leaving) { const fn = leaving; leaving = null; await fn(); }
  const s = session();
  const path = (location.hash || "#/").slice(1);
  drawBar(s, path);
  if (!s) {
    if (path !== "/signin") { history.replaceState(null, "", "#/signin"); }
    return signIn((next) => { setSession(next); location.hash = HOME[next.role]; });
  }
  const run = screen(path, s.role);
  if (!run) { location.hash = HOME[s.role]; return; }
  notify("");
  await run();
}

function drawBar(s, path) {
  const nav = /** @type {HTMLElement} */ (document.getElementById("nav"));
  const who = /** @type {HTMLElement} */ (document.getElementById("who"));
  nav.replaceChildren(...(s ? NAV[s.role] : []).map(([href, text]) =>
    h("a", { href, "aria-current": `#${path}`.startsWith(href) ? "page" : false }, text)));
  who.replaceChildren(...(s ? [
    h("span", {}, `${s.username} (${s.role})`),
    h("a", { href: "#/password" }, "Change password"),
    h("button", { type: "button", class: "secondary", onclick: () => { setSession(null); location.hash = "#/signin"; render(); } }, "Sign out"),
  ] : []));
}

window.addEventListener("hashchange", () => render());
window.addEventListener("meet:signed-out", () => { notify("Your session has ended; please sign in again.", true); render(); });

// A token from an earlier tab of this session is checked once; a revoked one signs out.
if (session()) api.profile().catch(() => {});
render();
