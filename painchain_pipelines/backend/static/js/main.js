// The web UI shell: routing between pages, connection settings, the error banner.
import { connection, saveConnection } from "./api.js";
import { renderIntegrations } from "./integrations.js";
import { renderTimeline } from "./timeline.js";
import { h, localZoneName, setTimeZoneSetting, timeZoneSetting, zoneLabel } from "./util.js";

const PAGES = { "/": ["timeline", renderTimeline], "/integrations": ["integrations", renderIntegrations] };
let cleanup = null;

export function navigate(url, { replace = false } = {}) {
  history[replace ? "replaceState" : "pushState"](null, "", url);
  route();
}

function showError(error, retry) {
  const banner = document.getElementById("banner");
  let text = error.message || String(error);
  if (error.status === 0) text = "The PainChain backend cannot be reached. Is it running?";
  if (error.status === 401) text = "This PainChain needs an API token: open the connection settings (gear icon).";
  if (error.status === 403) text = `Not allowed: ${error.message}`;
  banner.replaceChildren(h("span", {}, text));
  if (retry) banner.append(h("button", { type: "button", class: "button small", onclick: () => { clearError(); retry(); } }, "Retry"));
  banner.hidden = false;
}

function clearError() {
  document.getElementById("banner").hidden = true;
}

let routeCount = 0;

async function route() {
  const mine = ++routeCount;
  if (cleanup) cleanup();
  cleanup = null;
  clearError();
  const [name, render] = PAGES[location.pathname] || PAGES["/"];
  for (const link of document.querySelectorAll(".app-nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  // Each route renders into its own container: a render still loading when the user moves on
  // fills a detached one, and is disposed of as soon as it returns.
  const view = h("div", { class: "view" });
  document.getElementById("main").replaceChildren(view);
  document.title = name === "timeline" ? "PainChain — Timeline" : "PainChain — Integrations";
  const dispose = (await render(view, { navigate, showError, clearError })) || null;
  if (mine !== routeCount) {
    if (dispose) dispose();
    return;
  }
  cleanup = dispose;
}

function updateTenantBadge() {
  const { tenant, token } = connection();
  const badge = document.getElementById("tenant-badge");
  badge.hidden = !(tenant || token);
  badge.textContent = tenant ? `Tenant: ${tenant}` : "Token set";
}

function setupSettings() {
  const dialog = document.getElementById("settings-dialog");
  const form = document.getElementById("settings-form");
  document.getElementById("settings-button").addEventListener("click", () => {
    const { token, tenant } = connection();
    form.token.value = token || "";
    form.tenant.value = tenant || "";
    dialog.showModal();
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue !== "save") return;
    saveConnection({ token: form.token.value.trim(), tenant: form.tenant.value.trim() });
    updateTenantBadge();
    route();
  });
}

// Local time or UTC for every time shown (and typed into datetime fields); the page renders again.
function setupTimeZone() {
  const select = document.getElementById("time-zone");
  const describe = () => {
    select.options[0].textContent = `Local · ${localZoneName()}`;
    select.value = timeZoneSetting();
    select.title = `Times are shown in ${zoneLabel()}`;
  };
  describe();
  select.addEventListener("change", () => {
    setTimeZoneSetting(select.value);
    describe();
    route();
  });
}

document.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-nav]");
  if (!link || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
  if (link.origin !== location.origin) return;
  event.preventDefault();
  navigate(link.pathname + link.search);
});
window.addEventListener("popstate", route);
setupSettings();
setupTimeZone();
updateTenantBadge();
route();
