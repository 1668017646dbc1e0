// Small helpers shared by the pages: a DOM builder, time formatting, toasts.

/** h("a", {href: "/x", class: "y", onclick: fn}, "text", child) -> element. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "style" && typeof value === "object") Object.assign(el.style, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value);
  }
  for (const child of children) if (child) el.append(child instanceof Node ? child : document.createTextNode(child));
  return el;
}

export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

/** "15m", "2h", "7d" -> milliseconds (null when not a duration). */
export function parseDuration(text) {
  const match = /^(\d+)\s*(m|h|d)$/.exec(String(text || "").trim());
  if (!match) return null;
  return Number(match[1]) * { m: MINUTE, h: HOUR, d: DAY }[match[2]];
}

// ---- times: every time shown goes through these, in the zone the user chose (local or UTC)

const TIME_ZONE_KEY = "painchain.timeZone";
let timeZoneMode = localStorage.getItem(TIME_ZONE_KEY) === "utc" ? "utc" : "local";

/** "local" (the browser's zone) or "utc", as chosen in the header; kept in localStorage. */
export const timeZoneSetting = () => timeZoneMode;

export function setTimeZoneSetting(mode) {
  timeZoneMode = mode === "utc" ? "utc" : "local";
  localStorage.setItem(TIME_ZONE_KEY, timeZoneMode);
}

/** The browser's own zone, e.g. "Europe/Paris". */
export const localZoneName = () => Intl.DateTimeFormat().resolvedOptions().timeZone || "local";

/** The chosen zone's offset from UTC at `date`, in minutes (0 in UTC; DST-aware for local). */
function offsetMinutes(date) {
  return timeZoneMode === "utc" ? 0 : -new Date(date).getTimezoneOffset();
}

function offsetText(minutes) {
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

/** The zone in a few characters, for tooltips and details: "UTC" or "UTC+01:00". */
export function zoneShort(date = new Date()) {
  return timeZoneMode === "utc" ? "UTC" : offsetText(offsetMinutes(date));
}

/** The zone spelled out, for labels: "UTC" or "local · Europe/Paris (UTC+01:00)". */
export function zoneLabel(date = new Date()) {
  return timeZoneMode === "utc" ? "UTC" : `local · ${localZoneName()} (${offsetText(offsetMinutes(date))})`;
}

const FORMATS = {
  clock: { hour: "2-digit", minute: "2-digit" },
  time: { hour: "2-digit", minute: "2-digit", second: "2-digit" },
  dateTime: { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" },
  short: { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" },
  day: { weekday: "long", year: "numeric", month: "long", day: "numeric" },
  dayKey: { year: "numeric", month: "2-digit", day: "2-digit" },
};
const formatters = new Map();

// One Intl formatter per (format, zone), built on first use: list and chart share them.
function formatterFor(name) {
  const key = `${name}:${timeZoneMode}`;
  let formatter = formatters.get(key);
  if (!formatter) {
    const locale = name === "dayKey" ? "en-US" : undefined; // dayKey is parsed: Latin digits
    formatter = new Intl.DateTimeFormat(locale, { ...FORMATS[name], timeZone: timeZoneMode === "utc" ? "UTC" : undefined });
    formatters.set(key, formatter);
  }
  return formatter;
}

const formatIn = (name, date) => formatterFor(name).format(date);

export const formatTime = (d) => formatIn("time", d);
export const formatClock = (d) => formatIn("clock", d);
export const formatDateTime = (d) => formatIn("dateTime", d);
export const formatShort = (d) => formatIn("short", d);
/** Date, time and zone: for tooltips and details ("Jan 5, 2026, 14:05:09 UTC"). */
export const formatFull = (d) => `${formatDateTime(d)} ${zoneShort(d)}`;

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

export function formatRelative(date, now = Date.now()) {
  const seconds = Math.round((date.getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return "just now";
  if (abs < 3600) return relativeFormat.format(Math.round(seconds / 60), "minute");
  if (abs < 86400) return relativeFormat.format(Math.round(seconds / 3600), "hour");
  if (abs < 86400 * 30) return relativeFormat.format(Math.round(seconds / 86400), "day");
  return relativeFormat.format(Math.round(seconds / (86400 * 30)), "month");
}

/** The calendar day of a moment in the chosen zone, as a day number (days since 1970-01-01). */
function dayNumber(date) {
  const parts = Object.fromEntries(formatterFor("dayKey").formatToParts(date).map((p) => [p.type, Number(p.value)]));
  return Date.UTC(parts.year, parts.month - 1, parts.day) / DAY;
}

/** The timeline's group for a moment: Last hour, Today, Yesterday, or the date (in the chosen zone). */
export function groupLabel(date, now = new Date()) {
  if (now - date < HOUR && now - date >= -MINUTE) return "Last hour";
  const daysAgo = dayNumber(now) - dayNumber(date);
  if (daysAgo <= 0) return "Today";
  if (daysAgo === 1) return "Yesterday";
  return formatIn("day", date);
}

/** A Date as the value of <input type="datetime-local">, in the chosen zone. */
export function toZoneInput(date) {
  const shifted = new Date(date.getTime() + offsetMinutes(date) * MINUTE);
  return shifted.toISOString().slice(0, 16);
}

/** The value of <input type="datetime-local"> read in the chosen zone (null when empty or invalid). */
export function fromZoneInput(value) {
  if (!value) return null;
  const date = timeZoneMode === "utc" ? new Date(`${value}Z`) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

const darkScheme = window.matchMedia("(prefers-color-scheme: dark)");

/** A connector's colour, lightened when it would vanish on the dark theme (e.g. GitHub's #24292f). */
export function connectorColor(type, id) {
  const color = (type && type.color) || colorFor(id);
  const match = /^#([0-9a-f]{6})$/i.exec(color);
  if (!match || !darkScheme.matches) return color;
  const [r, g, b] = [0, 2, 4].map((i) => parseInt(match[1].slice(i, i + 2), 16));
  const luminance = (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
  if (luminance >= 0.35) return color;
  const mix = (c) => Math.round(c + (255 - c) * 0.6);
  return `rgb(${mix(r)} ${mix(g)} ${mix(b)})`;
}

/** A stable colour for connectors that did not register one. */
export function colorFor(id) {
  let hash = 0;
  for (const char of String(id)) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return `hsl(${hash % 360} 55% 48%)`;
}

let toastTimer;
export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 2600);
}

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    // Clipboard API needs a secure context; fall back to a hidden textarea.
    const area = h("textarea", { style: { position: "fixed", opacity: "0" } }, text);
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}
