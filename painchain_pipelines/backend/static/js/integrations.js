// Integrations: the list (grouped by connector, with sync status) and the create / edit forms,
// generated from each connector type's configSchema — including types registered later.
import { ApiError, api, connectorTypes } from "./api.js";
import { colorFor, formatFull, formatRelative, h, toast } from "./util.js";

// Overridable (localStorage "painchain.refreshMs") so that tests need not wait 30 s.
const STATUS_REFRESH_MS = Number(localStorage.getItem("painchain.refreshMs")) || 30_000;
const MAX_FAILED_SOURCES_SHOWN = 3;

export async function renderIntegrations(main, ctx) {
  const params = new URLSearchParams(location.search);
  if (params.get("new")) return renderForm(main, ctx, { typeId: params.get("new") });
  if (params.get("edit")) return renderForm(main, ctx, { integrationId: params.get("edit") });
  return renderList(main, ctx);
}

function logoOf(type, id) {
  if (type && type.logo) return h("span", { class: "logo image" }, h("img", { src: type.logo, alt: "" }));
  return h("span", { class: "logo", style: { background: (type && type.color) || colorFor(id) } },
    ((type && type.displayName) || id).slice(0, 1).toUpperCase());
}

async function renderList(main, { navigate, showError }) {
  let disposed = false;
  main.append(h("div", { class: "state" }, h("span", { class: "spinner", "aria-label": "Loading integrations" })));
  let types;
  let integrations;
  let statuses;
  try {
    [types, integrations, statuses] = await Promise.all([
      connectorTypes({ refresh: true }), api("/integrations"), api("/integrations/status"),
    ]);
  } catch (error) {
    main.replaceChildren(h("div", { class: "state" }, h("h2", {}, "Integrations cannot be shown"), h("p", {}, error.message)));
    showError(error, () => navigate(location.pathname, { replace: true }));
    return;
  }
  const statusById = new Map(statuses.map((s) => [s.id, s]));
  const addMenu = h("select", { id: "add-integration", "aria-label": "Add an integration of type" },
    h("option", { value: "" }, "Add integration…"),
    [...types.values()].map((t) => h("option", { value: t.id }, t.displayName)));
  addMenu.addEventListener("change", () => { if (addMenu.value) navigate(`/integrations?new=${encodeURIComponent(addMenu.value)}`); });
  main.replaceChildren(h("div", { class: "page-head" }, h("h1", {}, "Integrations"), types.size ? addMenu : null));

  if (!types.size) {
    main.append(h("div", { class: "state" }, h("h2", {}, "No connector is registered yet"),
      h("p", {}, "Connectors register themselves when they start (painchain up does it for GitHub).")));
    return;
  }
  if (!integrations.length) {
    main.append(h("div", { class: "state" }, h("h2", {}, "No integrations yet — add one"),
      h("p", {}, "An integration is a set of credentials and sources (repositories, projects, clusters) to watch."),
      h("div", { class: "actions" }, [...types.values()].map((t) =>
        h("a", { class: "button primary", href: `/integrations?new=${encodeURIComponent(t.id)}`, "data-nav": "" }, `Add ${t.displayName}`)))));
    return;
  }
  const byType = new Map();
  for (const integration of integrations) {
    if (!byType.has(integration.type)) byType.set(integration.type, []);
    byType.get(integration.type).push(integration);
  }
  for (const [typeId, items] of byType) {
    const type = types.get(typeId);
    const label = (type && type.displayName) || typeId;
    main.append(h("section", { class: "type-group", "aria-label": label },
      h("div", { class: "type-head" }, logoOf(type, typeId), h("h2", {}, label),
        h("a", { class: "button small", href: `/integrations?new=${encodeURIComponent(typeId)}`, "data-nav": "" }, `Add ${label}`)),
      h("div", { class: "cards" }, items.map((i) => card(i, statusById.get(i.id), { navigate, showError })))));
  }

  // Statuses move on their own (checks every minute, syncs, the orchestrator stopping): follow them.
  const refreshTimer = setInterval(async () => {
    try {
      const fresh = await api("/integrations/status");
      if (disposed) return;
      for (const status of fresh) {
        const el = main.querySelector(`article.card[data-id="${CSS.escape(status.id)}"]`);
        if (!el) continue;
        el.querySelector(".card-status").replaceChildren(...statusLines(status));
        el.querySelector(".card-events").replaceChildren(eventsLink(status.id, status.eventsLast24h));
      }
    } catch {
      // the next tick tries again; the page shows the last answer meanwhile
    }
  }, STATUS_REFRESH_MS);
  return () => {
    disposed = true;
    clearInterval(refreshTimer);
  };
}

function statusText(cls, content, title) {
  return h("div", { class: `status ${cls}`, title: title || null }, content);
}

const relative = (iso) => formatRelative(new Date(iso));
const full = (iso) => formatFull(new Date(iso));
const later = (a, b) => (!a ? b : !b ? a : Date.parse(a) >= Date.parse(b) ? a : b);

/**
 * What a card says about syncing, from GET /api/integrations/status: never synced (and why),
 * failing, sources it cannot read, up to date (checked vs. last change synced), or stopped.
 */
function statusLines(status) {
  if (!status) return [statusText("muted", "Not synced yet")];
  const orchestrator = status.orchestrator || null; // absent from older backends: say nothing about it
  const stopped = orchestrator !== null && !orchestrator.running;
  const problem = orchestrator && orchestrator.running ? orchestrator.problem : null;
  const failing = status.lastErrorAt && (!status.lastSuccessAt || Date.parse(status.lastErrorAt) > Date.parse(status.lastSuccessAt));
  const startIt = ["start it with ", h("code", {}, "painchain up")];

  if (!status.lastSuccessAt && !status.lastErrorAt) {
    if (stopped) return [statusText("warn", ["Not synced yet — the orchestrator is not running (", startIt, ")"])];
    if (problem) return [statusText("bad", `Not synced yet — Dagster cannot sync: ${problem}`)];
    if (status.firstSyncQueuedAt) {
      return [statusText("pending", `First sync queued in Dagster ${relative(status.firstSyncQueuedAt)}`, full(status.firstSyncQueuedAt))];
    }
    return [statusText("muted", "Not synced yet — waiting for Dagster (the first sync starts within a minute)")];
  }

  const lines = [];
  if (failing) {
    lines.push(statusText("bad", `⚠ Failing since ${relative(status.lastErrorAt)}: ${status.lastError}`, full(status.lastErrorAt)));
  }
  if (stopped) {
    const seen = orchestrator.seenAt ? ` (last heard from ${relative(orchestrator.seenAt)})` : "";
    lines.push(statusText("warn", [`⚠ Syncs stopped — the orchestrator is not running${seen}; `, startIt],
      orchestrator.seenAt ? full(orchestrator.seenAt) : null));
  } else if (problem) {
    lines.push(statusText("bad", `⚠ Dagster cannot sync: ${problem}`));
  }
  const failedSources = Object.entries(status.failedSources || {});
  if (failedSources.length) {
    const n = failedSources.length;
    const shown = failedSources.slice(0, MAX_FAILED_SOURCES_SHOWN).map(([source, reason]) => `${source}: ${reason}`);
    const rest = n > shown.length ? `; and ${n - shown.length} more` : "";
    lines.push(statusText("warn", `⚠ ${n} source${n === 1 ? "" : "s"} cannot be read — ${shown.join("; ")}${rest}`,
      failedSources.map(([source, reason]) => `${source}: ${reason}`).join("\n")));
  }
  if (status.lastSuccessAt) {
    if (failing) {
      lines.push(statusText("ok", `✓ Last successful sync ${relative(status.lastSuccessAt)}`, full(status.lastSuccessAt)));
    } else if (status.lastCheckedAt === undefined) {
      lines.push(statusText("ok", `✓ Last successful sync ${relative(status.lastSuccessAt)}`, full(status.lastSuccessAt))); // older backend
    } else {
      // "checked": the orchestrator last looked (a sync, or a change check that found nothing new);
      // "last change synced": the last sync run. A quiet integration is checked often, synced rarely.
      const checked = later(status.lastCheckedAt, status.lastSuccessAt);
      const syncedApart = Date.parse(checked) - Date.parse(status.lastSuccessAt) >= 60_000;
      const when = syncedApart
        ? `checked ${relative(checked)}; last change synced ${relative(status.lastSuccessAt)}`
        : `synced ${relative(status.lastSuccessAt)}`;
      const title = `Checked ${full(checked)}\nLast change synced ${full(status.lastSuccessAt)}`;
      if (stopped || problem) lines.push(statusText("muted", `Last ${when}`, title));
      else if (failedSources.length) lines.push(statusText("ok", `✓ The other sources are up to date — ${when}`, title));
      else lines.push(statusText("ok", `✓ Up to date — ${when}`, title));
    }
  }
  return lines;
}

function eventsLink(integrationId, events) {
  return h("a", { href: `/?integration=${encodeURIComponent(integrationId)}&range=24h`, "data-nav": "" },
    `${events.toLocaleString()} event${events === 1 ? "" : "s"} in the last 24 h`);
}

function card(integration, status, { navigate }) {
  const tags = Array.isArray(integration.config.tags) ? integration.config.tags : [];
  const events = status ? status.eventsLast24h : 0;
  return h("article", { class: "card", "aria-label": integration.name, dataset: { id: integration.id } },
    h("h3", {}, integration.name),
    tags.length ? h("div", { class: "chips" }, tags.map((t) => h("span", { class: "chip" }, t))) : null,
    h("div", { class: "card-status", "aria-live": "polite" }, statusLines(status)),
    h("div", { class: "card-events" }, eventsLink(integration.id, events)),
    integration.tenantId ? h("div", { class: "muted" }, `Tenant ${integration.tenantId}`) : null,
    h("div", { class: "actions" },
      h("a", { class: "button small", href: `/integrations?edit=${encodeURIComponent(integration.id)}`, "data-nav": "" }, "Edit"),
      h("button", { type: "button", class: "button small danger", onclick: () => confirmDelete(integration, events, navigate) }, "Delete")));
}

function confirmDelete(integration, events, navigate) {
  const dialog = h("dialog", { "aria-labelledby": "delete-title" },
    h("form", { method: "dialog", class: "dialog-form" },
      h("h2", { id: "delete-title" }, `Delete “${integration.name}”?`),
      h("p", {}, "Its events are deleted with it and it stops syncing. This cannot be undone."),
      h("div", { class: "dialog-actions" },
        h("button", { value: "cancel", class: "button", autofocus: true }, "Cancel"),
        h("button", { value: "delete", class: "button danger" }, "Delete"))));
  document.body.append(dialog);
  dialog.addEventListener("close", async () => {
    dialog.remove();
    if (dialog.returnValue !== "delete") return;
    try {
      await api(`/integrations/${encodeURIComponent(integration.id)}`, { method: "DELETE" });
      toast(`Deleted ${integration.name}`);
      navigate("/integrations", { replace: true });
    } catch (error) {
      toast(`Could not delete: ${error.message}`);
    }
  });
  dialog.showModal();
}

// ---------------------------------------------------------------- the generated form

function isJsonField(field) {
  return field.type === "textarea" && field.format !== "text" && (field.format === "json" || field.key === "tags" ||
    /^\s*[[{]/.test(field.placeholder || "") || schemaWantsJson(field.jsonSchema));
}

function checkJson(text) {
  if (!text.trim()) return null;
  try {
    JSON.parse(text);
    return null;
  } catch (error) {
    return error.message;
  }
}

// ---- the JSON type a field's `jsonSchema` asks for: checked here for the common, simple
// cases (top-level type, type of the items, anyOf/oneOf of types); the server checks the rest.

const TYPE_WORDS = { array: "a JSON array", object: "a JSON object", string: "a string", number: "a number",
  integer: "a whole number", boolean: "true or false", null: "null" };
const PLURAL_WORDS = { array: "arrays", object: "objects", string: "strings", number: "numbers",
  integer: "whole numbers", boolean: "booleans", null: "nulls" };
const GOT_WORDS = { array: "an array", object: "an object", string: "a string", number: "a number",
  integer: "a number", boolean: "a boolean", null: "null" };

function jsonTypeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/** The simple types a schema accepts (its type, or an anyOf/oneOf of types); null when it does not say simply. */
function acceptedTypes(schema) {
  if (!schema || typeof schema !== "object") return null;
  if (schema.type) return Array.isArray(schema.type) ? schema.type : [schema.type];
  const options = schema.anyOf || schema.oneOf;
  if (!Array.isArray(options)) return null;
  const types = options.map(acceptedTypes);
  return types.every(Boolean) ? [...new Set(types.flat())] : null;
}

function schemaWantsJson(schema) {
  const types = acceptedTypes(schema);
  return Boolean(types && types.some((t) => t !== "string"));
}

function hasType(value, types) {
  const actual = jsonTypeOf(value);
  return types.some((t) => t === actual || (t === "number" && actual === "integer"));
}

/** "Repositories must be a JSON array, e.g. ["octocat/hello-world"] — got a string", or null. */
function schemaProblem(field, value) {
  const schema = field.jsonSchema;
  const example = field.placeholder ? `, e.g. ${field.placeholder}` : "";
  const types = acceptedTypes(schema);
  if (types && !hasType(value, types)) {
    return `${field.label} must be ${types.map((t) => TYPE_WORDS[t] || t).join(" or ")}${example} — got ${GOT_WORDS[jsonTypeOf(value)]}`;
  }
  const itemTypes = Array.isArray(value) ? acceptedTypes(schema.items) : null;
  if (itemTypes) {
    const index = value.findIndex((item) => !hasType(item, itemTypes));
    if (index >= 0) {
      return `${field.label} must be a JSON array of ${itemTypes.map((t) => PLURAL_WORDS[t] || t).join(" or ")}${example}` +
        ` — item ${index + 1} is ${GOT_WORDS[jsonTypeOf(value[index])]}`;
    }
  }
  return null;
}

/**
 * The problem with a field's text as typed, or null: JSON syntax, then the type its jsonSchema
 * asks for (the value read as the server reads it: JSON when the field is JSON, else text).
 */
function valueProblem(field, text) {
  if (!String(text).trim()) return null;
  const json = isJsonField(field);
  if (json) {
    const syntax = checkJson(text);
    if (syntax) return `Not valid JSON: ${syntax}`;
  }
  if (!field.jsonSchema || !["textarea", "number"].includes(field.type)) return null;
  const value = field.type === "number" ? Number(text) : json ? JSON.parse(text) : text;
  return schemaProblem(field, value);
}

async function renderForm(main, { navigate, showError }, { typeId, integrationId }) {
  main.append(h("div", { class: "state" }, h("span", { class: "spinner", "aria-label": "Loading form" })));
  let integration = null;
  let type;
  try {
    if (integrationId) {
      integration = await api(`/integrations/${encodeURIComponent(integrationId)}`);
      typeId = integration.type;
    }
    type = await api(`/integrations/types/${encodeURIComponent(typeId)}`);
  } catch (error) {
    main.replaceChildren(h("div", { class: "state" }, h("h2", {}, "This form cannot be shown"), h("p", {}, error.message),
      h("a", { href: "/integrations", "data-nav": "", class: "button" }, "Back to integrations")));
    if (error.status !== 404) showError(error);
    return;
  }
  const fields = type.configSchema.fields || [];
  const controls = new Map();
  const errors = new Map();
  const alert = h("div", { class: "form-alert", role: "alert", hidden: true });

  const form = h("form", { class: "form-card", novalidate: true, "aria-labelledby": "form-title" },
    h("div", { class: "type-head" }, logoOf(type, type.id),
      h("h2", { id: "form-title" }, integration ? `Edit ${integration.name}` : `New ${type.displayName} integration`)),
    type.description ? h("p", { class: "muted" }, type.description) : null,
    alert);

  for (const field of fields) {
    const id = `field-${field.key}`;
    const helpId = `${id}-help`;
    const errorId = `${id}-error`;
    const stored = integration ? integration.config[field.key] : undefined;
    // A new integration starts from the field's default (e.g. GitLab's https://gitlab.com).
    const initial = integration ? stored : field.default;
    const describedBy = [field.help ? helpId : null, errorId].filter(Boolean).join(" ");
    const common = { id, name: field.key, "aria-describedby": describedBy, "aria-required": field.required ? "true" : null };
    let control;
    if (field.type === "textarea") {
      const value = initial === undefined || initial === null ? "" : typeof initial === "string" ? initial : JSON.stringify(initial, null, 2);
      // Tall enough for what it holds (a list of clusters), within reason.
      const rows = Math.min(14, Math.max(3, value.split("\n").length));
      control = h("textarea", { ...common, placeholder: field.placeholder || null, rows, spellcheck: "false" }, value);
    } else if (field.type === "password") {
      const isSet = integration && stored;
      control = h("input", {
        ...common, type: "password", autocomplete: "new-password",
        placeholder: isSet ? "Unchanged — type to replace" : field.placeholder || null,
      });
    } else if (field.type === "number") {
      control = h("input", { ...common, type: "number", value: initial ?? "", placeholder: field.placeholder || null, step: "any" });
    } else if (field.type === "checkbox") {
      control = h("input", { ...common, type: "checkbox", checked: stored === true || (stored === undefined && field.default === true) });
    } else if (field.type === "select") {
      const options = (field.options || []).map((o) => (typeof o === "object" ? o : { value: o, label: String(o) }));
      control = h("select", common,
        field.required ? null : h("option", { value: "" }, "—"),
        options.map((o) => h("option", { value: String(o.value), selected: initial !== undefined && String(initial) === String(o.value) }, o.label || String(o.value))));
    } else {
      control = h("input", { ...common, type: "text", value: initial ?? "", placeholder: field.placeholder || null, autocomplete: "off" });
    }
    const error = h("p", { class: "field-error", id: errorId, hidden: true });
    controls.set(field.key, control);
    errors.set(field.key, error);
    const label = h("label", { for: id }, field.label, field.required ? h("span", { class: "required", "aria-hidden": "true" }, " *") : null);
    const help = field.help || "";
    const passwordNote = field.type === "password" && integration ? " Leave empty to keep the stored value." : "";
    if (field.type === "checkbox") {
      form.append(h("div", { class: "checkbox-row" }, control, label), help || passwordNote ? h("p", { class: "help", id: helpId }, help + passwordNote) : null, error);
    } else {
      form.append(label, control, help || passwordNote ? h("p", { class: "help", id: helpId }, help + passwordNote) : null, error);
    }
    if (isJsonField(field) || field.jsonSchema) {
      const check = () => setError(field.key, valueProblem(field, control.value));
      control.addEventListener("input", check);
      control.addEventListener("blur", check);
    }
  }

  // A field that decides where secrets are sent (guardsSecrets): when it changes, those secrets
  // must be typed again (the API refuses otherwise), so the form asks for them at once.
  const original = new Map(fields.map((f) => [f.key, controls.get(f.key).value]));
  const guards = fields.filter((f) => integration && (f.guardsSecrets || []).length);
  function secretsToReenter() {
    const needed = new Map();
    for (const guard of guards) {
      if (controls.get(guard.key).value.trim() === String(original.get(guard.key)).trim()) continue;
      for (const key of guard.guardsSecrets) if (integration.config[key]) needed.set(key, guard.label);
    }
    return needed;
  }
  function markSecretsToReenter() {
    const needed = secretsToReenter();
    for (const field of fields.filter((f) => f.type === "password" && integration && integration.config[f.key])) {
      const control = controls.get(field.key);
      const because = needed.get(field.key);
      control.placeholder = because ? `Required — ${because} changed` : "Unchanged — type to replace";
      if (because) control.setAttribute("aria-required", "true"); else if (!field.required) control.removeAttribute("aria-required");
    }
  }
  for (const guard of guards) controls.get(guard.key).addEventListener("input", markSecretsToReenter);

  function setError(key, message) {
    const error = errors.get(key);
    const control = controls.get(key);
    if (!error) return false;
    error.textContent = message || "";
    error.hidden = !message;
    if (message) control.setAttribute("aria-invalid", "true"); else control.removeAttribute("aria-invalid");
    return true;
  }

  function collect() {
    const config = {};
    let firstProblem = null;
    for (const field of fields) {
      const control = controls.get(field.key);
      let value;
      if (field.type === "checkbox") value = control.checked;
      else value = control.value;
      let problem = null;
      if (field.type === "password" && integration && value === "") {
        const because = secretsToReenter().get(field.key);
        if (!because) continue; // keeps the stored secret
        problem = `${field.label} must be entered again: ${because} changed`;
      }
      if (!problem && field.type !== "checkbox" && field.required && String(value).trim() === "") {
        problem = `${field.label} is required` + (field.key === "tags" ? ` (use [] for none)` : "");
      } else if (!problem && field.type !== "checkbox") {
        problem = valueProblem(field, value);
      }
      setError(field.key, problem);
      if (problem && !firstProblem) firstProblem = control;
      if (field.type === "number" && value !== "") value = Number(value);
      if (value === "" && !field.required) continue;
      config[field.key] = value;
    }
    return { config, firstProblem };
  }

  const submit = h("button", { type: "submit", class: "button primary" }, integration ? "Save changes" : "Create integration");
  form.append(h("div", { class: "form-actions" }, submit,
    h("a", { href: "/integrations", class: "button", "data-nav": "" }, "Cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    alert.hidden = true;
    const { config, firstProblem } = collect();
    if (firstProblem) {
      firstProblem.focus();
      return;
    }
    submit.disabled = true;
    try {
      if (integration) {
        await api(`/integrations/${encodeURIComponent(integration.id)}`, { method: "PUT", body: { config } });
        toast("Saved");
      } else {
        await api("/integrations", { method: "POST", body: { type: type.id, config } });
        toast("Integration created: its changes appear on the timeline within a minute");
      }
      navigate("/integrations");
    } catch (error) {
      submit.disabled = false;
      if (!(error instanceof ApiError) || error.status !== 422) {
        alert.textContent = error.message;
        alert.hidden = false;
        if (error.status === 0) showError(error);
        return;
      }
      const unplaced = [];
      let first = null;
      for (const [loc, message] of Object.entries(error.fieldErrors())) {
        const key = loc.replace(/^config\./, "").split(".")[0];
        if (loc.startsWith("config.") && setError(key, message)) first = first || controls.get(key);
        else if (loc === "name" && setError("name", message)) first = first || controls.get("name");
        else unplaced.push(`${loc}: ${message}`);
      }
      if (unplaced.length) {
        alert.textContent = unplaced.join("; ");
        alert.hidden = false;
      }
      (first || alert).focus?.();
    }
  });
  main.replaceChildren(h("p", {}, h("a", { href: "/integrations", "data-nav": "" }, "← Integrations")), form);
  controls.values().next().value?.focus();
}
