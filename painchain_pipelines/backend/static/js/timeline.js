// The timeline: every change, newest first, with filters kept in the URL, a histogram to zoom
// with, an incident view ("what changed before…"), endless scrolling and auto-refresh.
import { api, connectorTypes } from "./api.js";
import { renderChart } from "./chart.js";
import { renderData, rowStatus, safeUrl, statusBadge } from "./detail.js";
import {
  DAY, HOUR, MINUTE, connectorColor, copyText, debounce, formatFull, formatRelative, formatShort, formatTime,
  fromZoneInput, groupLabel, h, parseDuration, toZoneInput, toast, zoneLabel, zoneShort,
} from "./util.js";

const PRESETS = ["15m", "1h", "6h", "24h", "7d", "30d"];
const INCIDENT_WINDOWS = ["30m", "1h", "2h", "6h", "24h"];
const AFTER_INCIDENT = 10 * MINUTE; // the incident view also shows what happened just after
const PAGE_SIZE = 100;
const ROW_HEIGHT_ESTIMATE = 68; // px, until a chunk of rows has been laid out once
// Overridable (localStorage "painchain.refreshMs") so that tests need not wait 30 s.
const REFRESH_MS = Number(localStorage.getItem("painchain.refreshMs")) || 30_000;
const REFRESH_OVERLAP_MS = 60_000;
const MAX_REFRESH_PAGES = 10; // beyond 1,000 new events per refresh, reloading is the better view
const FILTER_KEYS = ["connector", "project", "integration", "tags", "q"];

/** Everything the page shows, from the URL (so that a link reproduces the view). */
function readState() {
  const p = new URLSearchParams(location.search);
  const state = {
    range: p.get("range"), since: p.get("since"), until: p.get("until"),
    incident: p.get("incident"), before: p.get("before") || "2h", event: p.get("event"),
  };
  for (const key of FILTER_KEYS) state[key] = p.get(key) || "";
  if (!state.range && !state.since && !state.incident && !state.event) state.range = "24h";
  return state;
}

function stateUrl(state) {
  const p = new URLSearchParams();
  for (const key of ["range", "since", "until", "incident", "before", "event", ...FILTER_KEYS]) {
    if (state[key] && !(key === "before" && !state.incident)) p.set(key, state[key]);
  }
  const query = p.toString();
  return "/" + (query ? `?${query}` : "");
}

/** The time window of a state: {since, until (null = now), live}. */
function windowOf(state, now = Date.now()) {
  if (state.incident) {
    const at = Date.parse(state.incident);
    return { since: at - (parseDuration(state.before) || 2 * HOUR), until: at + AFTER_INCIDENT, live: false };
  }
  if (state.since) {
    const until = state.until ? Date.parse(state.until) : null;
    return { since: Date.parse(state.since), until, live: until === null };
  }
  return { since: now - (parseDuration(state.range) || DAY), until: null, live: true };
}

function filterParams(state) {
  return {
    connector: state.connector || undefined,
    project: state.project || undefined,
    integrationId: state.integration || undefined,
    tags: state.tags || undefined,
    q: state.q || undefined,
  };
}

export async function renderTimeline(main, { navigate, showError, clearError }) {
  let state = readState();
  let disposed = false;
  let refreshTimer = null;
  let clockTimer = null;
  let observer = null;
  let generation = 0; // bumps on every reload, so late answers of an old view are dropped

  let types = new Map();
  let integrations = [];
  try {
    [types, integrations] = await Promise.all([connectorTypes({ refresh: true }), api("/integrations")]);
  } catch (error) {
    showError(error, () => navigate(location.pathname + location.search, { replace: true }));
    main.append(emptyState("The timeline cannot be shown", "The backend did not answer; see the message above."));
    return () => {};
  }
  const integrationNames = new Map(integrations.map((i) => [i.id, i.name]));

  // ---- deep link to an event: a window around it unless the link carries its own
  let focusEventId = null;
  if (state.event) {
    try {
      const event = await api(`/events/${encodeURIComponent(state.event)}`);
      focusEventId = event.id;
      if (!state.since && !state.incident) {
        const at = Date.parse(event.timestamp);
        state = { ...state, range: null, since: new Date(at - HOUR).toISOString(), until: new Date(at + HOUR).toISOString() };
      }
    } catch (error) {
      showError(error.status === 404 ? new Error(`Event ${state.event} does not exist (any more).`) : error);
    }
  }

  // ---- filters. Changing one updates the URL and reloads the data in place: the inputs are
  // never rebuilt under the user's fingers (Back and Forward render the page again).
  const presetButtons = PRESETS.map((preset) => h("button", {
    type: "button", "aria-pressed": String(state.range === preset && !state.incident),
    onclick: () => update({ range: preset, since: null, until: null, incident: null, event: null }),
  }, preset));
  const fromInput = h("input", { id: "f-from", type: "datetime-local", "aria-label": "From" });
  const toInput = h("input", { id: "f-to", type: "datetime-local", "aria-label": "To" });
  const connectorSelect = h("select", { id: "f-connector", onchange: () => update({ connector: connectorSelect.value }) },
    h("option", { value: "" }, "All connectors"),
    [...types.values()].map((t) => h("option", { value: t.id, selected: state.connector === t.id }, t.displayName)));
  const integrationSelect = h("select", { id: "f-integration", onchange: () => update({ integration: integrationSelect.value }) },
    h("option", { value: "" }, "All integrations"),
    integrations.map((i) => h("option", { value: i.id, selected: state.integration === i.id }, i.name)));
  const projectList = h("datalist", { id: "project-options" });
  const tagList = h("datalist", { id: "tag-options" });
  const projectInput = h("input", { id: "f-project", type: "text", list: "project-options", value: state.project, placeholder: "owner/repo", autocomplete: "off" });
  const tagsInput = h("input", { id: "f-tags", type: "text", list: "tag-options", value: state.tags, placeholder: "production, …", autocomplete: "off" });
  const searchInput = h("input", { id: "f-search", type: "search", value: state.q, placeholder: "title, SHA, author…" });
  const applyText = () => update({ project: projectInput.value.trim(), tags: tagsInput.value.trim(), q: searchInput.value.trim() }, { typing: true });
  const applyTextSoon = debounce(applyText, 500);
  for (const input of [projectInput, tagsInput, searchInput]) {
    input.addEventListener("keydown", (event) => { if (event.key === "Enter") applyText(); });
    input.addEventListener("change", applyText);
  }
  searchInput.addEventListener("input", applyTextSoon);

  const field = (label, control, extra = "") => h("label", { class: `field ${extra}` }, h("span", {}, label), control);
  const activeFilterCount = () => FILTER_KEYS.filter((key) => state[key]).length;
  const filtersSummary = h("summary", {});
  const filtersBox = h("details", { class: "filters-box", open: window.innerWidth > 640 || activeFilterCount() > 0 }, filtersSummary);
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Timeline filters", onsubmit: (e) => { e.preventDefault(); applyText(); } },
    h("div", { class: "field" }, h("span", {}, "Range"), h("div", { class: "presets", role: "group", "aria-label": "Time range" }, presetButtons)),
    // the datetime inputs are read in the chosen zone, named next to them
    field(`From (${zoneShort()})`, fromInput), field(`To (${zoneShort()})`, toInput),
    h("button", {
      type: "button", class: "button", onclick: () => {
        const since = fromZoneInput(fromInput.value);
        const until = fromZoneInput(toInput.value);
        if (!since) return toast("Choose a start time");
        if (until && until <= since) return toast("The end must be after the start");
        update({ range: null, incident: null, event: null, since: since.toISOString(), until: until ? until.toISOString() : null });
      },
    }, "Apply range"),
    field("Connector", connectorSelect), field("Integration", integrationSelect),
    field("Project", projectInput), field("Tags", tagsInput), field("Search", searchInput, "grow"),
    projectList, tagList,
  );

  // ---- incident view
  const closeIncidentButton = h("button", { type: "button", class: "button", onclick: () => update({ incident: null, range: "24h" }) }, "Close incident view");
  const incidentInput = h("input", { id: "incident-at", type: "datetime-local", value: toZoneInput(state.incident ? new Date(state.incident) : new Date()) });
  const incidentWindow = h("select", { id: "incident-window", "aria-label": "Window before the incident" },
    INCIDENT_WINDOWS.map((w) => h("option", { value: w, selected: w === state.before }, `${w} before`)));
  const incidentBar = h("div", { class: "incident-bar", role: "group", "aria-label": "What changed before an incident" },
    h("strong", {}, "What changed before…"),
    h("label", { class: "field" }, h("span", { class: "visually-hidden" }, `Incident time (${zoneLabel()})`), incidentInput),
    h("span", { class: "zone-hint", title: zoneLabel() }, zoneShort()),
    incidentWindow,
    h("button", {
      type: "button", class: "button primary", onclick: () => {
        const at = fromZoneInput(incidentInput.value);
        if (!at) return toast("Enter the incident time");
        update({ incident: at.toISOString(), before: incidentWindow.value, range: null, since: null, until: null, event: null });
      },
    }, "Show changes"),
    closeIncidentButton,
  );

  const rangeLabel = h("div", { class: "range-label", "aria-live": "polite" });
  const chartCard = h("div", { class: "chart-card" }, h("span", { class: "spinner", "aria-label": "Loading chart" }));
  const list = h("div", { class: "timeline", "aria-label": "Events", role: "feed", "aria-busy": "true" });
  const moreButton = h("button", { type: "button", class: "button", hidden: true, onclick: () => loadMore() }, "Load more");
  const more = h("div", { class: "load-more" }, moreButton);
  filtersBox.append(filters);
  main.append(filtersBox, incidentBar, rangeLabel, chartCard, list, more);

  // ---- the list
  let cursor = null;
  let loadingGeneration = null; // the generation whose page is being fetched
  let shown = new Set();
  let newestTs = null;
  let newestReceived = null; // the backend's receivedAt (ms) of the newest-stored event shown
  let refreshing = false;
  let markerPlaced = false;
  let currentWindow = windowOf(state);
  let incidentAt = state.incident ? Date.parse(state.incident) : null;

  /**
   * Applies filter changes: the URL follows (a new history entry per discrete choice; typing
   * refines one entry, so Back leaves the search rather than one keystroke), then the data
   * reloads in place.
   */
  function update(changes, { typing = false } = {}) {
    const previousUrl = stateUrl(state);
    state = { ...state, ...changes };
    const url = stateUrl(state);
    if (typing && url === previousUrl) return; // Enter or blur after the debounced search already ran
    if (url !== location.pathname + location.search) {
      if (typing && history.state?.typing) history.replaceState({ typing: true }, "", url);
      else history.pushState(typing ? { typing: true } : null, "", url);
    }
    reload();
    syncControls();
  }

  /** The controls that show the state, except a text field the user is typing in. */
  function syncControls() {
    const setValue = (input, value) => { if (input !== document.activeElement && input.value !== value) input.value = value; };
    for (const button of presetButtons) button.setAttribute("aria-pressed", String(state.range === button.textContent && !state.incident));
    setValue(fromInput, toZoneInput(new Date(currentWindow.since)));
    setValue(toInput, currentWindow.until ? toZoneInput(new Date(currentWindow.until)) : "");
    setValue(connectorSelect, state.connector);
    setValue(integrationSelect, state.integration);
    setValue(projectInput, state.project);
    setValue(tagsInput, state.tags);
    setValue(searchInput, state.q);
    if (state.incident) setValue(incidentInput, toZoneInput(new Date(state.incident)));
    closeIncidentButton.hidden = !state.incident;
    const active = activeFilterCount();
    filtersSummary.textContent = active ? `Filters (${active} active)` : "Filters";
  }

  /** Everything below the filters again, for the current state; answers of older loads are dropped. */
  function reload() {
    generation += 1;
    currentWindow = windowOf(state);
    incidentAt = state.incident ? Date.parse(state.incident) : null;
    cursor = null;
    loadingGeneration = null;
    shown = new Set();
    newestTs = null;
    newestReceived = null;
    markerPlaced = false;
    list.replaceChildren();
    list.setAttribute("aria-busy", "true");
    moreButton.hidden = true;
    more.replaceChildren(moreButton);
    chartCard.classList.add("reloading");
    renderRangeLabel(null); // the new window at once; its count when the chart has it
    clearInterval(refreshTimer);
    refreshTimer = currentWindow.live ? setInterval(refresh, REFRESH_MS) : null;
    loadMore();
    loadChart();
    loadFacets();
  }

  function windowParams(w) {
    return { since: new Date(w.since).toISOString(), until: w.until ? new Date(w.until).toISOString() : undefined };
  }

  function eventRow(event) {
    const type = types.get(event.connector) || {};
    const color = connectorColor(type, event.connector);
    const data = event.data || {};
    const url = safeUrl(data.url);
    const at = new Date(event.timestamp);
    const status = rowStatus(data);
    const author = data.author || data.actor || data.creator || data.user;
    const detailId = `detail-${event.id}`;
    const logo = type.logo
      ? h("span", { class: "logo image", title: type.displayName }, h("img", { src: type.logo, alt: type.displayName || event.connector }))
      : h("span", { class: "logo", title: event.connector, style: { background: color } }, (type.displayName || event.connector).slice(0, 1).toUpperCase());
    const toggle = h("button", { type: "button", class: "button small toggle", "aria-expanded": "false", "aria-controls": detailId, "aria-label": `Details of ${event.title}` }, "Details");
    const row = h("article", { class: "event", id: `event-${event.id}`, style: { "--connector": color }, "aria-label": event.title, dataset: { id: event.id, ts: Date.parse(event.timestamp) } },
      logo,
      h("div", { class: "event-main" },
        h("div", { class: "event-title" }, url ? h("a", { href: url, target: "_blank", rel: "noopener noreferrer" }, event.title) : event.title),
        h("div", { class: "event-meta" },
          h("span", {}, event.project),
          author ? h("span", {}, `by ${author}`) : null,
          integrationNames.has(event.integrationId) ? h("span", {}, integrationNames.get(event.integrationId)) : null,
          (event.tags || []).map((tag) => h("span", { class: "chip" }, tag)))),
      h("div", { class: "event-side" },
        h("time", { datetime: event.timestamp, title: formatFull(at) }, formatTime(at)),
        h("span", { class: "relative", dataset: { ts: at.getTime() } }, formatRelative(at)),
        h("span", { class: "side-row" }, status ? statusBadge(status) : null, toggle)));
    let detail = null;
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") === "true";
      toggle.setAttribute("aria-expanded", String(!open));
      toggle.textContent = open ? "Details" : "Hide";
      if (open) { detail.hidden = true; return; }
      if (!detail) {
        const link = `${location.origin}/?event=${event.id}`;
        detail = h("div", { class: "detail", id: detailId },
          renderData(data),
          h("dl", {},
            h("dt", {}, "Time"), h("dd", {}, `${formatFull(at)} (${formatRelative(at)}) — ${event.timestamp}`),
            h("dt", {}, "Connector"), h("dd", {}, type.displayName || event.connector),
            h("dt", {}, "External id"), h("dd", {}, h("code", {}, event.externalId)),
            h("dt", {}, "Received"), h("dd", {}, formatFull(new Date(event.receivedAt)))),
          h("div", { class: "actions" },
            h("button", { type: "button", class: "button small", onclick: async () => toast(await copyText(link) ? "Link copied" : link) }, "Copy link"),
            h("a", { class: "button small", href: `/?event=${event.id}`, "data-nav": "" }, "Open around this event")));
        row.append(detail);
      }
      detail.hidden = false;
    });
    return row;
  }

  function newGroup(label) {
    return h("section", { class: "group", dataset: { label }, "aria-label": label },
      h("h2", { class: "group-title" }, label), h("div", { class: "group-body" }));
  }

  function ensureGroup(label, atTop) {
    const groups = list.querySelectorAll(".group");
    const edge = atTop ? groups[0] : groups[groups.length - 1];
    if (edge && edge.dataset.label === label) return edge.querySelector(".group-body");
    const group = newGroup(label);
    if (atTop) list.prepend(group); else list.append(group);
    return group.querySelector(".group-body");
  }

  function incidentMarker() {
    return h("div", { class: "incident-marker", role: "separator", "aria-label": "Incident time" },
      `Incident · ${formatShort(new Date(incidentAt))} ${zoneShort(new Date(incidentAt))}`);
  }

  // Rows go into chunks of at most one page, each skipped by layout while off screen
  // (content-visibility), so a group of thousands of rows costs only what is visible.
  function newChunk(body, atTop) {
    const chunk = h("div", { class: "chunk" });
    if (atTop) body.prepend(chunk); else body.append(chunk);
    return chunk;
  }

  function sizeChunks(chunks) {
    for (const chunk of chunks) chunk.style.containIntrinsicSize = `auto ${chunk.childElementCount * ROW_HEIGHT_ESTIMATE}px`;
  }

  function appendEvents(events) {
    const now = new Date();
    const chunks = new Set();
    let body = null;
    let chunk = null;
    for (const event of events) {
      if (shown.has(event.id)) continue;
      shown.add(event.id);
      const at = new Date(event.timestamp);
      if (newestTs === null || at.getTime() > newestTs) newestTs = at.getTime();
      noteReceived(event);
      const groupBody = ensureGroup(groupLabel(at, now), false);
      if (groupBody !== body) {
        body = groupBody;
        chunk = newChunk(body, false);
        chunks.add(chunk);
      }
      if (incidentAt !== null && !markerPlaced && at.getTime() <= incidentAt) {
        chunk.append(incidentMarker());
        markerPlaced = true;
      }
      chunk.append(eventRow(event));
    }
    sizeChunks(chunks);
  }

  function noteReceived(event) {
    const received = Date.parse(event.receivedAt);
    if (newestReceived === null || received > newestReceived) newestReceived = received;
  }

  // Events found by the live refresh: newer ones go on top; late arrivals (stored now, but
  // with a timestamp among what is shown) go to their place in time; older than everything
  // loaded so far, they are left to paging, which will reach them.
  function insertEvents(events) {
    const now = new Date();
    const chunks = new Set();
    for (const event of [...events].reverse()) { // oldest first: each newer one lands above
      if (shown.has(event.id)) continue;
      const at = new Date(event.timestamp);
      const ts = at.getTime();
      const label = groupLabel(at, now);
      const row = eventRow(event);
      row.classList.add("fresh");
      if (newestTs === null || ts >= newestTs) {
        const body = ensureGroup(label, true);
        const first = body.firstElementChild;
        const chunk = first && first.classList.contains("chunk") && chunks.has(first) ? first : newChunk(body, true);
        chunks.add(chunk);
        chunk.prepend(row);
        newestTs = ts;
      } else {
        const next = [...list.querySelectorAll("article.event")].find((r) => Number(r.dataset.ts) < ts);
        if (!next && cursor !== undefined) continue;
        if (!next) {
          const body = ensureGroup(label, false);
          const chunk = newChunk(body, false);
          chunks.add(chunk);
          chunk.append(row);
        } else {
          const nextGroup = next.closest(".group");
          if (nextGroup.dataset.label === label) {
            next.before(row);
          } else {
            // the row belongs to an earlier group, after everything in it
            let group = [...list.querySelectorAll(".group")].find((g) => g.dataset.label === label);
            if (!group) {
              group = newGroup(label);
              nextGroup.before(group);
            }
            const body = group.querySelector(".group-body");
            const chunk = newChunk(body, false);
            chunks.add(chunk);
            chunk.append(row);
          }
        }
      }
      shown.add(event.id);
      noteReceived(event);
    }
    sizeChunks(chunks);
  }

  async function loadMore() {
    const mine = generation;
    if (loadingGeneration === mine || disposed || (cursor === undefined)) return;
    loadingGeneration = mine;
    moreButton.hidden = true;
    const spinner = h("span", { class: "spinner", "aria-label": "Loading" });
    more.append(spinner);
    try {
      const page = await api("/events", { params: { ...filterParams(state), ...windowParams(currentWindow), limit: PAGE_SIZE, cursor: cursor || undefined } });
      if (mine !== generation) return;
      appendEvents(page.events);
      cursor = page.nextCursor || undefined;
      if (!shown.size) showEmpty();
      clearError();
    } catch (error) {
      if (mine === generation) showError(error, () => loadMore());
    } finally {
      spinner.remove();
      if (mine === generation) {
        loadingGeneration = null;
        list.setAttribute("aria-busy", "false");
        moreButton.hidden = cursor === undefined;
        if (cursor === undefined && shown.size) more.replaceChildren(h("span", {}, `That's all: ${shown.size.toLocaleString()} events`));
      }
    }
  }

  function showEmpty() {
    if (!integrations.length) {
      list.replaceChildren(emptyState("No integrations yet", "Add one and its changes will appear here.",
        h("a", { href: "/integrations", class: "button primary", "data-nav": "" }, "Add an integration")));
      return;
    }
    const filtered = FILTER_KEYS.some((key) => state[key]);
    list.replaceChildren(emptyState(
      filtered ? "No changes match these filters" : "No changes in this range",
      incidentAt !== null ? "Nothing changed in the window before the incident." : "Try a longer range or fewer filters.",
      h("div", { class: "actions" },
        h("button", { type: "button", class: "button", onclick: () => update({ range: "7d", since: null, until: null, incident: null }) }, "Last 7 days"),
        h("button", { type: "button", class: "button", onclick: () => update({ range: "30d", since: null, until: null, incident: null }) }, "Last 30 days"),
        filtered ? h("button", { type: "button", class: "button", onclick: () => update(Object.fromEntries(FILTER_KEYS.map((k) => [k, ""]))) }, "Clear filters") : null),
    ));
    if (incidentAt !== null) list.prepend(incidentMarker());
  }

  async function loadChart() {
    const mine = generation;
    try {
      const buckets = Math.max(20, Math.min(120, Math.floor(chartCard.clientWidth / 9)));
      const histogram = await api("/events/histogram", { params: { ...filterParams(state), ...windowParams({ ...currentWindow, until: currentWindow.until || Date.now() }), buckets } });
      if (mine !== generation || disposed) return;
      chartCard.classList.remove("reloading");
      renderChart(chartCard, histogram, {
        types,
        marker: incidentAt !== null ? new Date(incidentAt) : null,
        onZoom: (start, end) => update({ range: null, incident: null, event: null, since: new Date(start).toISOString(), until: new Date(Math.max(end, start + MINUTE)).toISOString() }),
      });
      renderRangeLabel(histogram.total);
    } catch (error) {
      if (mine !== generation || disposed) return;
      chartCard.classList.remove("reloading");
      chartCard.replaceChildren(h("p", { class: "muted" }, `Chart unavailable: ${error.message}`));
    }
  }

  async function loadFacets() {
    const mine = generation;
    try {
      const facets = await api("/events/facets", { params: { connector: state.connector || undefined, integrationId: state.integration || undefined, ...windowParams(currentWindow) } });
      if (mine !== generation || disposed) return;
      projectList.replaceChildren(...facets.projects.map((p) => h("option", { value: p.value }, `${p.count}`)));
      tagList.replaceChildren(...facets.tags.map((t) => h("option", { value: t.value }, `${t.count}`)));
    } catch {
      // suggestions are a convenience; the filters work without them
    }
  }

  /** The window, its zone and `total` events (null: still counting). */
  function renderRangeLabel(total) {
    const w = currentWindow;
    const zoomed = state.since && !state.event;
    rangeLabel.replaceChildren(...[
      h("span", {}, `${formatShort(new Date(w.since))} – ${w.until ? formatShort(new Date(w.until)) : "now"}`),
      h("span", { class: "zone", title: "Times are shown in this zone (switch in the header)" }, zoneLabel(new Date(w.until || Date.now()))),
      total === null ? h("span", { class: "muted" }, "counting…") : h("span", {}, `${total.toLocaleString()} events`),
      w.live ? h("span", { class: "badge ok", title: `Refreshes every ${REFRESH_MS / 1000} s` }, "live") : null,
      zoomed ? h("button", { type: "button", class: "button small", onclick: () => update({ since: null, until: null, range: "24h" }) }, "Reset zoom") : null,
    ].filter(Boolean));
  }

  async function refresh() {
    if (disposed || !currentWindow.live || document.hidden || refreshing) return;
    refreshing = true;
    const mine = generation;
    try {
      const params = { ...filterParams(state), ...windowParams(currentWindow), limit: PAGE_SIZE };
      // What was stored since the newest-stored event shown, whatever its timestamp (connectors
      // deliver late: a commit pushed hours after it was authored). The overlap covers writes
      // that committed after a later one; duplicates are dropped by id.
      if (newestReceived !== null) params.receivedSince = new Date(newestReceived - REFRESH_OVERLAP_MS).toISOString();
      const fresh = [];
      for (let pages = 0; pages < MAX_REFRESH_PAGES; pages++) {
        const page = await api("/events", { params });
        if (mine !== generation || disposed) return;
        fresh.push(...page.events.filter((e) => !shown.has(e.id)));
        if (!page.nextCursor) break;
        params.cursor = page.nextCursor;
      }
      if (fresh.length) {
        if (!shown.size) list.replaceChildren();
        insertEvents(fresh);
        loadChart();
      }
    } catch {
      // the next tick tries again; persistent failures show when the user acts
    } finally {
      refreshing = false;
    }
  }

  function tickClock() {
    const now = Date.now();
    for (const el of list.querySelectorAll(".relative")) el.textContent = formatRelative(new Date(Number(el.dataset.ts)), now);
  }

  // ---- first load
  syncControls();
  list.setAttribute("aria-busy", "true");
  await Promise.all([loadMore(), loadChart()]);
  loadFacets();

  if (focusEventId !== null) {
    for (let pages = 0; !document.getElementById(`event-${focusEventId}`) && cursor !== undefined && pages < 20; pages++) {
      await loadMore();
    }
    const row = document.getElementById(`event-${focusEventId}`);
    if (row) {
      row.classList.add("highlight");
      row.querySelector("button.toggle").click();
      row.scrollIntoView({ block: "center" });
      row.querySelector("button.toggle").focus({ preventScroll: true });
    }
  }

  observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: "600px" });
  observer.observe(more);
  if (currentWindow.live) refreshTimer = setInterval(refresh, REFRESH_MS);
  clockTimer = setInterval(tickClock, MINUTE);
  const onResize = debounce(() => loadChart(), 300);
  window.addEventListener("resize", onResize);

  return () => {
    disposed = true;
    generation += 1;
    observer?.disconnect();
    clearInterval(refreshTimer);
    clearInterval(clockTimer);
    window.removeEventListener("resize", onResize);
  };
}

function emptyState(title, text, action) {
  return h("div", { class: "state" }, h("h2", {}, title), h("p", {}, text), action || null);
}
