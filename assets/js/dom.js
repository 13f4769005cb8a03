// A few DOM helpers shared by the screens.

/**
 * An element: h("button", {class: "x", onclick}, "text", child...). Attributes starting with
 * "on" are listeners; `false`/`null` attributes are left out; children may be nested arrays.
 * @param {string} tag @param {Record<string, any>} [attrs] @param {...any} children
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

let screens = 0;

/** The router starts a screen: whatever the screens before it show from now on is dropped. */
export function nextScreen() { screens += 1; }

/**
 * `show` for the screen that starts now. A screen draws after its requests come back; if the
 * user has gone elsewhere meanwhile (a link followed while the page loaded), what it would
 * draw belongs to a page no longer on screen, and is dropped.
 */
export function view() {
  const mine = screens;
  return (/** @type {string} */ title, /** @type {any[]} */ ...children) => {
    if (mine === screens) show(title, ...children);
  };
}

/** Replaces the content of the main view and moves the focus there (for screen readers). */
export function show(title, ...children) {
  const view = /** @type {HTMLElement} */ (document.getElementById("view"));
  view.replaceChildren(h("h1", {}, title), ...children.flat());
  document.title = `${title} · meet`;
  view.focus();
}

/** A status line: `bad` for errors. Sentences only, from the API's `message`. */
export function notify(text, bad = false) {
  const n = /** @type {HTMLElement} */ (document.getElementById("notice"));
  n.textContent = text;
  n.classList.toggle("bad", bad);
}

/** Runs an action, showing its error as a sentence; returns its result or undefined. */
export async function attempt(fn) {
  try {
    notify("");
    return await fn();
  } catch (e) {
    notify(e instanceof Error ? e.message : String(e), true);
    return undefined;
  }
}

/** `2026-03-10 09:05` in the reader's time zone. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** `1:05:09` or `4:07`. */
export function clock(seconds) {
  const s = Math.max(0, Math.round(seconds));
  const hh = Math.floor(s / 3600), mm = Math.floor((s % 3600) / 60), ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

/** A form whose submit runs `fn(values)`; fields are [name, label, type, attrs]. */
export function form(label, fields, submit, fn, cls = "stack") {
  const inputs = fields.map(([name, text, type = "text", attrs = {}]) =>
    h("label", {}, text, h("input", { name, type, required: true, autocomplete: "off", ...attrs })));
  const f = h("form", { class: cls, "aria-label": label }, inputs, h("button", { type: "submit" }, submit));
  f.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const values = Object.fromEntries(new FormData(f).entries());
    const button = /** @type {HTMLButtonElement} */ (f.querySelector("button[type=submit]"));
    button.disabled = true;
    try {
      await fn(values, f);
    } finally {
      button.disabled = false;
    }
  });
  return f;
}
