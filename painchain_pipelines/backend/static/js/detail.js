// Renders an event's `data` readably: links as links, times as times, statuses as badges,
// nested objects and lists as nested lists. Everything goes through text nodes (data is untrusted).
import { formatFull, formatRelative, h } from "./util.js";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
// Where connectors put a status word; a row's badge takes the first outcome among them
// (a failed run's "conclusion: failure" over its "status: completed"), else the first word.
const STATUS_KEYS = ["conclusion", "result", "outcome", "state", "status", "phase", "reason", "action"];

// Status words by meaning, normalized (lowercase, letters only: "timed_out" -> "timedout").
// Green and red are for outcomes only; lifecycle words (created, opened, completed, merged,
// closed, published, inactive…) say what happened, not whether it went well: neutral.
const STATUS_CLASSES = {
  ok: ["success", "succeeded", "successful", "passed", "fixed", "complete", "deployed", "healthy", "ready",
    "available", "resolved"],
  bad: ["failure", "failed", "error", "errored", "timedout", "timeout", "startupfailure", "crashloopbackoff",
    "oomkilled", "imagepullbackoff", "errimagepull", "createcontainererror", "createcontainerconfigerror",
    "invalidimagename", "evicted", "backofflimitexceeded", "deadlineexceeded", "progressdeadlineexceeded",
    "failedscheduling", "failedmount", "unhealthy", "degraded", "notready", "unavailable"],
  // finished without succeeding or failing, needs a look
  warn: ["cancelled", "canceled", "aborted", "actionrequired", "stale", "unstable", "rolledback", "warning"],
  // not finished yet
  pending: ["queued", "pending", "inprogress", "waiting", "waitingforresource", "requested", "running",
    "progressing", "scheduled", "preparing", "manual", "starting", "containercreating"],
};
const STATUS_CLASS = new Map(Object.entries(STATUS_CLASSES).flatMap(([cls, words]) => words.map((w) => [w, cls])));
const OUTCOME_CLASSES = new Set(["ok", "bad", "warn"]);

// Numbers under these keys identify something (run 11000501530, PR 42, exit code 137): shown
// as raw digits so they can be copied and searched; other numbers are quantities.
const IDENTIFIER_WORDS = new Set(["id", "ids", "iid", "number", "numbers", "no", "num", "attempt", "code", "sha",
  "pid", "uid", "gid", "port", "year", "revision", "generation", "version", "serial", "ref"]);

export function safeUrl(value) {
  if (typeof value !== "string") return null;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

/** "ok" | "bad" | "warn" | "pending" | "" (neutral: lifecycle words and words we do not know). */
export function statusClass(value) {
  return STATUS_CLASS.get(String(value).toLowerCase().replace(/[^a-z]/g, "")) || "";
}

/** A short status word, not a sentence (reason fields sometimes hold one). */
function isStatusWord(value) {
  return typeof value === "string" && value.length > 0 && value.length <= 40 && value.trim().split(/\s+/).length <= 3;
}

/** The status a row shows for `data`: the first outcome among the status keys, else the first status word. */
export function rowStatus(data) {
  const words = STATUS_KEYS.map((key) => data[key]).filter(isStatusWord);
  return words.find((word) => OUTCOME_CLASSES.has(statusClass(word))) || words[0] || null;
}

export function statusBadge(value) {
  return h("span", { class: `badge ${statusClass(value)}`.trim() }, String(value).replaceAll("_", " "));
}

/** conclusion, status…, and their qualified forms: lastState, deploymentStatus. */
function isStatusKey(key) {
  return STATUS_KEYS.includes(key) || /[a-z](State|Status|Conclusion|Phase|Reason|Result|Outcome)$/.test(key);
}

function isIdentifierKey(key) {
  const words = String(key).replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase().split(/[^a-z0-9]+/).filter(Boolean);
  return words.length > 0 && IDENTIFIER_WORDS.has(words[words.length - 1]);
}

function humanize(key) {
  return String(key).replace(/([a-z0-9])([A-Z])/g, "$1 $2").replaceAll("_", " ").replace(/^./, (c) => c.toUpperCase());
}

function duration(seconds) {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

export function renderValue(key, value, depth = 0) {
  if (value === null || value === undefined || value === "") return h("span", { class: "muted" }, "—");
  if (typeof value === "boolean") return h("span", {}, value ? "yes" : "no");
  if (typeof value === "number") {
    if (key && /seconds$/i.test(key)) return h("span", {}, duration(value));
    return h("span", {}, key && isIdentifierKey(key) ? String(value) : value.toLocaleString());
  }
  if (typeof value === "string") {
    const url = safeUrl(value);
    if (url) return h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, value);
    if (ISO_TIME.test(value)) {
      const date = new Date(value);
      return h("time", { datetime: value, title: value }, `${formatFull(date)} (${formatRelative(date)})`);
    }
    if (key && isStatusKey(key) && isStatusWord(value)) return statusBadge(value);
    if (value.includes("\n")) return h("pre", {}, value);
    return h("span", {}, value);
  }
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) {
      // items keep the list's key: "runIds" are identifiers too
      return h("span", {}, value.map((v, i) => [i ? ", " : "", renderValue(key, v, depth + 1)]));
    }
    return h("ol", {}, value.map((v) => h("li", {}, renderValue(null, v, depth + 1))));
  }
  if (typeof value === "object") {
    if (depth > 6) return h("pre", {}, JSON.stringify(value, null, 2));
    return renderData(value, depth + 1);
  }
  return h("span", {}, String(value));
}

export function renderData(data, depth = 0) {
  const list = h("dl");
  for (const [key, value] of Object.entries(data || {})) {
    list.append(h("dt", {}, humanize(key)), h("dd", {}, renderValue(key, value, depth)));
  }
  return list;
}
