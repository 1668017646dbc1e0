// The event-count chart: stacked bars per connector from the backend's histogram (never from
// the loaded page). Click a bar, or drag across bars, to zoom; Enter on a focused bar zooms too.
import { connectorColor, formatClock, formatShort, h, s, zoneLabel, zoneShort } from "./util.js";

const HEIGHT = 140;
const AXIS = 18;

function niceMax(value) {
  if (value <= 5) return Math.max(1, value);
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return value;
}

/**
 * histogram: the backend's answer; types: Map id -> connector type; onZoom(startMs, endMs);
 * marker: optional Date drawn as a dashed line (incident time).
 */
export function renderChart(card, histogram, { types, onZoom, marker }) {
  card.replaceChildren();
  const width = Math.max(280, card.clientWidth - 20);
  const since = Date.parse(histogram.since);
  const until = Date.parse(histogram.until);
  const bucketMs = histogram.bucketSeconds * 1000;
  const span = Math.max(1, until - since);
  const x = (t) => ((Math.min(Math.max(t, since), until) - since) / span) * width;
  const top = niceMax(Math.max(0, ...histogram.buckets.map((b) => b.total)));
  const plot = HEIGHT - AXIS;
  const headroom = 16; // above the tallest bar, for the scale label
  const y = (n) => (n / top) * (plot - headroom);
  const color = (id) => connectorColor(types.get(id), id);
  const label = (id) => (types.get(id) || {}).displayName || id;
  const shortSpan = span <= 2 * 86400_000;

  const svg = s("svg", {
    class: "chart", viewBox: `0 0 ${width} ${HEIGHT}`, width, height: HEIGHT, role: "group",
    "aria-label": `Events per ${Math.round(histogram.bucketSeconds / 60)} minutes, ${histogram.total} in all. Click or drag to zoom.`,
  });
  const bars = s("g");
  const tip = h("div", { class: "chart-tip", hidden: true });

  histogram.buckets.forEach((bucket) => {
    const start = Date.parse(bucket.start);
    const x0 = x(start);
    const barWidth = Math.max(1, x(start + bucketMs) - x0 - 1);
    let stacked = 0;
    for (const connector of histogram.connectors) {
      const n = bucket.counts[connector] || 0;
      if (!n) continue;
      const height = y(n);
      bars.append(s("rect", { x: x0, y: plot - stacked - height, width: barWidth, height, fill: color(connector), rx: 1 }));
      stacked += height;
    }
    // the same formatters as the list, in the chosen zone, which the description names
    const end = new Date(start + bucketMs);
    const description = `${formatShort(new Date(start))} – ${formatClock(end)} ${zoneShort(end)}: ${bucket.total} events`;
    const hit = s("rect", {
      class: "bar", x: x0, y: 0, width: barWidth + 1, height: plot, fill: "transparent", tabindex: 0,
      role: "button", "aria-label": description, "data-start": start,
    });
    hit.addEventListener("pointerenter", () => {
      tip.replaceChildren(h("strong", {}, description),
        ...histogram.connectors.filter((c) => bucket.counts[c]).map((c) => h("div", {}, `${label(c)}: ${bucket.counts[c]}`)));
      tip.hidden = false;
      tip.style.left = `${Math.min(x0 + 14, width - 160)}px`;
      tip.style.top = "8px";
    });
    hit.addEventListener("pointerleave", () => { tip.hidden = true; });
    hit.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        onZoom(start, start + bucketMs);
      }
    });
    bars.append(hit);
  });
  svg.append(bars);

  const axis = s("g", { class: "axis" });
  axis.append(s("line", { x1: 0, x2: width, y1: plot + 0.5, y2: plot + 0.5 }));
  const ticks = Math.max(2, Math.min(7, Math.floor(width / 130)));
  for (let i = 0; i <= ticks; i++) {
    const t = since + (span * i) / ticks;
    const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
    const text = shortSpan ? formatClock(new Date(t)) : formatShort(new Date(t));
    axis.append(s("text", { x: x(t), y: HEIGHT - 4, "text-anchor": anchor }, text));
  }
  axis.append(s("line", { class: "grid", x1: 0, x2: width, y1: headroom - 0.5, y2: headroom - 0.5 }));
  axis.append(s("text", { x: 2, y: headroom - 4 }, String(top)));
  svg.append(axis);

  if (marker) {
    const mx = x(marker.getTime());
    svg.append(s("line", { class: "incident-line", x1: mx, x2: mx, y1: 0, y2: plot }, s("title", {}, "Incident")));
  }

  // Drag to select a range; a click without movement zooms into the bucket under the pointer.
  const selection = s("rect", { class: "selection", y: 0, height: plot, width: 0, visibility: "hidden" });
  svg.append(selection);
  let dragStart = null;
  const toTime = (clientX) => {
    const rect = svg.getBoundingClientRect();
    return since + ((clientX - rect.left) / rect.width) * span;
  };
  svg.addEventListener("pointerdown", (event) => {
    dragStart = event.clientX;
    svg.setPointerCapture(event.pointerId);
  });
  svg.addEventListener("pointermove", (event) => {
    if (dragStart === null) return;
    const rect = svg.getBoundingClientRect();
    const scale = width / rect.width;
    const a = (Math.min(dragStart, event.clientX) - rect.left) * scale;
    const b = (Math.max(dragStart, event.clientX) - rect.left) * scale;
    selection.setAttribute("x", a);
    selection.setAttribute("width", Math.max(0, b - a));
    selection.setAttribute("visibility", "visible");
  });
  svg.addEventListener("pointerup", (event) => {
    if (dragStart === null) return;
    const moved = Math.abs(event.clientX - dragStart);
    const a = toTime(Math.min(dragStart, event.clientX));
    const b = toTime(Math.max(dragStart, event.clientX));
    dragStart = null;
    selection.setAttribute("visibility", "hidden");
    if (moved > 6) {
      onZoom(Math.max(since, a), Math.min(until, b));
    } else {
      // Buckets are aligned to UTC multiples of their size (as the backend counts them).
      const bucketStart = Math.max(since, Math.floor(a / bucketMs) * bucketMs);
      onZoom(bucketStart, Math.min(until, bucketStart + bucketMs));
    }
  });

  const legend = h("div", { class: "chart-legend" },
    histogram.connectors.map((c) => h("span", {}, h("i", { style: { background: color(c) } }), label(c))));
  if (!histogram.total) legend.append(h("span", {}, "No events in this range"));
  legend.append(h("span", { class: "chart-zone" }, `Times: ${zoneLabel(new Date(until))}`));
  card.append(svg, tip, legend);
}
