// The backend API, same origin. Token and tenant come from the settings dialog (localStorage).

const STORAGE_KEY = "painchain.connection";

export function connection() {
  try {
    return JSON.parse(localStorage.getItem(STORAGE_KEY)) || {};
  } catch {
    return {};
  }
}

export function saveConnection({ token, tenant }) {
  localStorage.setItem(STORAGE_KEY, JSON.stringify({ token: token || "", tenant: tenant || "" }));
}

export class ApiError extends Error {
  constructor(status, detail, message) {
    super(message);
    this.status = status; // 0: the backend could not be reached
    this.detail = detail;
  }

  /** FastAPI validation errors as {"config.token": "message", ...} (path after "body"). */
  fieldErrors() {
    const out = {};
    if (Array.isArray(this.detail)) {
      for (const error of this.detail) {
        const loc = (error.loc || []).filter((part) => part !== "body");
        out[loc.join(".") || "_"] = error.msg;
      }
    }
    return out;
  }
}

function describe(status, detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((e) => `${(e.loc || []).slice(1).join(".")}: ${e.msg}`).join("; ");
  return `HTTP ${status}`;
}

export async function api(path, { method = "GET", body, params } = {}) {
  const url = new URL("/api" + path, location.origin);
  for (const [key, value] of Object.entries(params || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const item of Array.isArray(value) ? value : [value]) url.searchParams.append(key, item);
  }
  const { token, tenant } = connection();
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (token) headers.Authorization = `Bearer ${token}`;
  if (tenant) headers["x-tenant-id"] = tenant;
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    throw new ApiError(0, null, "The PainChain backend cannot be reached.");
  }
  if (response.status === 204) return null;
  let payload = null;
  try {
    payload = await response.json();
  } catch {
    payload = null;
  }
  if (!response.ok) {
    const detail = payload && payload.detail;
    throw new ApiError(response.status, detail, describe(response.status, detail));
  }
  return payload;
}

let typesPromise = null;
/** Registered connector types by id ({displayName, color, logo, ...}), cached per page load. */
export function connectorTypes({ refresh = false } = {}) {
  if (!typesPromise || refresh) {
    typesPromise = api("/integrations/types").then((types) => new Map(types.map((t) => [t.id, t])));
    typesPromise.catch(() => { typesPromise = null; });
  }
  return typesPromise;
}
