// The REST API of docs/API.md, and the signed-in session. No DOM here.

const KEY = "meet.session";

/** An error answer of the API: `message` is a sentence for people, `code` for programs. */
export class ApiError extends Error {
  /** @param {number} status @param {string} code @param {string} message */
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** @typedef {{_id: string, username: string, role: "admin"|"host"|"student", token: string, expiresAt: string}} Session */

/** @returns {Session|null} */
export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(KEY) || "null");
    if (s && new Date(s.expiresAt).getTime() > Date.now()) return s;
  } catch { /* a damaged entry is no session */ }
  return null;
}

/** @param {Session|null} s */
export function setSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s));
  else sessionStorage.removeItem(KEY);
}

/**
 * One request. Resolves with the JSON body; rejects with an ApiError carrying the API's message.
 * @param {string} method @param {string} path @param {object} [body]
 */
export async function call(method, path, body) {
  const headers = { Accept: "application/json" };
  const s = session();
  if (s) headers.Authorization = `Bearer ${s.token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check the connection and try again.");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    if (res.status === 401 && s && path !== "/api/auth/login") {
      setSession(null);
      window.dispatchEvent(new Event("meet:signed-out"));
    }
    const fields = Array.isArray(data.errors) && data.errors.length
      ? " " + data.errors.map((e) => `${e.field}: ${e.message}.`).join(" ") : "";
    throw new ApiError(res.status, data.code || "error", (data.message || `The server answered ${res.status}.`) + fields);
  }
  return data;
}

export const api = {
  login: (username, password) => call("POST", "/api/auth/login", { username, password }),
  profile: () => call("GET", "/api/auth/profile"),
  changePassword: (currentPassword, newPassword) =>
    call("PUT", "/api/auth/change-password", { currentPassword, newPassword }),

  hosts: () => call("GET", "/api/admin/hosts").then((r) => r.data.hosts),
  createHost: (username, password) => call("POST", "/api/admin/hosts", { username, password }),
  updateHost: (id, fields) => call("PUT", `/api/admin/hosts/${id}`, fields),
  deleteHost: (id) => call("DELETE", `/api/admin/hosts/${id}`),
  stats: () => call("GET", "/api/admin/stats"),

  students: () => call("GET", "/api/host/students").then((r) => r.data.students),
  createStudent: (username, password) => call("POST", "/api/host/students", { username, password }),
  updateStudent: (id, fields) => call("PUT", `/api/host/students/${id}`, fields),
  deleteStudent: (id) => call("DELETE", `/api/host/students/${id}`),
  hostMeetings: () => call("GET", "/api/host/meetings").then((r) => r.meetings),
  hostRecordings: () => call("GET", "/api/host/recordings").then((r) => r.recordings),
  createMeeting: (topic) => call("POST", "/api/meetings/create", { topic }).then((r) => r.meeting),

  studentInfo: () => call("GET", "/api/student/info"),
  studentMeetings: () => call("GET", "/api/student/meetings").then((r) => r.meetings),
  studentRecordings: () => call("GET", "/api/student/recordings").then((r) => r.recordings),
  privateRecordings: () => call("GET", "/api/student/recordings/private").then((r) => r.recordings),

  meeting: (id) => call("GET", `/api/meetings/${id}`),
  join: (id) => call("POST", `/api/meetings/${id}/join`, {}),
  leave: (id) => call("POST", `/api/meetings/${id}/leave`, {}),
  end: (id) => call("POST", `/api/meetings/${id}/end`, {}),
  startRecording: (id) => call("POST", `/api/meetings/${id}/recording/start`, {}).then((r) => r.recording),
  stopRecording: (id) => call("POST", `/api/meetings/${id}/recording/stop`, {}).then((r) => r.recording),

  recording: (id) => call("GET", `/api/recordings/${id}`).then((r) => r.recording),
  deleteRecording: (id) => call("DELETE", `/api/recordings/${id}`),
  /** A link the `<audio>` element can play without a token (signed, or S3's presigned URL). */
  playbackUrl: (id, track) =>
    call("GET", `/api/recordings/url/${id}${track ? `?track=${encodeURIComponent(track)}` : ""}`).then((r) => r.url),
};
