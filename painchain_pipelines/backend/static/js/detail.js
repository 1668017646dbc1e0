// Renders an event's `data` readably: links as links, times as times, statuses as badges,
// nested objects and lists as nested lists. Everything goes through text nodes (data is untrusted).
import { formatDateTime, formatRelative, h } from "./util.js";

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/;
const STATUS_KEYS = new Set(["conclusion", "state", "status", "action", "phase", "reason", "result"]);
const GOOD = new Set(["success", "succeeded", "completed", "merged", "published", "ready", "running", "healthy", "created", "opened", "available"]);
const BAD = new Set(["failure", "failed", "error", "errored", "cancelled", "canceled", "timed_out", "crashloopbackoff", "degraded", "startup_failure", "closed", "oomkilled"]);
const PENDING = new Set(["in_progress", "queued", "pending", "waiting", "progressing", "requested", "action_required"]);

export function safeUrl(value) {
  if (typeof value !== "string") return null;
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

export function statusClass(value) {
  const key = String(value).toLowerCase();
  if (GOOD.has(key)) return "ok";
  if (BAD.has(key)) return "bad";
  if (PENDING.has(key)) return "warn";
  return "";
}

export function statusBadge(value) {
  return h("span", { class: `badge ${statusClass(value)}` }, String(value).replaceAll("_", " "));
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
  if (typeof value === "number") return h("span", {}, key && /seconds$/i.test(key) ? duration(value) : value.toLocaleString());
  if (typeof value === "string") {
    const url = safeUrl(value);
    if (url) return h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, value);
    if (ISO_TIME.test(value)) {
      const date = new Date(value);
      return h("time", { datetime: value, title: value }, `${formatDateTime(date)} (${formatRelative(date)})`);
    }
    if (key && STATUS_KEYS.has(key)) return statusBadge(value);
    if (value.includes("\n")) return h("pre", {}, value);
    return h("span", {}, value);
  }
  if (Array.isArray(value)) {
    if (value.every((v) => typeof v !== "object" || v === null)) {
      return h("span", {}, value.map((v, i) => [i ? ", " : "", renderValue(null, v, depth + 1)]));
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
