// The browser side of render-dashboard.mjs: lays out window.PAGE's panels by
// their gridPos and draws stat panels as Grafana's stat (last value, value
// mappings, threshold colours) and time series with uPlot.
/* global uPlot */
window.rendered = false;
window.renderErrors = [];

const PALETTE = ["#73bf69", "#f2cc0c", "#5794f2", "#ff780a", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"];
const COLORS = { green: "#73bf69", yellow: "#fade2a", orange: "#ff9830", red: "#f2495c" };

/** A value in the panel's unit, as Grafana writes it. */
function format(value, unit, decimals) {
  if (value === null || Number.isNaN(value)) return "–";
  const fixed = (v, d) => v.toFixed(decimals ?? d);
  switch (unit) {
    case "percentunit":
      return `${fixed(value * 100, 1)}%`;
    case "s":
      if (value < 1) return `${fixed(value * 1000, value < 0.01 ? 2 : 1)} ms`;
      return `${fixed(value, 2)} s`;
    case "ops":
    case "reqps":
      return `${fixed(value, value < 10 ? 2 : 1)} ${unit === "ops" ? "ops/s" : "req/s"}`;
    default:
      return Number.isInteger(value) ? String(value) : fixed(value, 2);
  }
}

function mapped(value, defaults) {
  for (const mapping of defaults.mappings ?? []) {
    const hit = mapping.type === "value" ? mapping.options?.[String(value)] : undefined;
    if (hit) return hit;
  }
  return null;
}

function thresholdColor(value, defaults) {
  let color = null;
  for (const step of defaults.thresholds?.steps ?? []) {
    if (step.value === null || value >= step.value) color = step.color;
  }
  return COLORS[color] ?? color ?? "#73bf69";
}

function lastValue(points) {
  for (let i = points.length - 1; i >= 0; i--) {
    if (!Number.isNaN(points[i][1])) return points[i][1];
  }
  return null;
}

function statPanel(body, panel) {
  const stats = document.createElement("div");
  stats.className = "stats";
  for (const series of panel.series) {
    const value = lastValue(series.points);
    const mapping = value === null ? null : mapped(value, panel.defaults);
    const color = COLORS[mapping?.color] ?? (value === null ? "#8e8ea0" : thresholdColor(value, panel.defaults));
    const stat = document.createElement("div");
    stat.className = "stat";
    if (panel.defaults.color?.mode === "thresholds" || panel.defaults.mappings) {
      stat.style.background = color;
      stat.style.color = "#111217";
    } else {
      stat.style.color = color;
    }
    const text = mapping?.text ?? format(value, panel.defaults.unit, panel.defaults.decimals);
    stat.innerHTML = `<div class="value"></div><div class="name"></div>`;
    stat.querySelector(".value").textContent = text;
    stat.querySelector(".name").textContent = series.name;
    stats.append(stat);
  }
  body.append(stats);
}

/** uPlot wants one shared x axis: the union of every series' timestamps. */
function aligned(seriesList) {
  const times = [...new Set(seriesList.flatMap((s) => s.points.map(([t]) => t)))].sort((a, b) => a - b);
  const index = new Map(times.map((t, i) => [t, i]));
  const columns = seriesList.map((s) => {
    const column = new Array(times.length).fill(null);
    for (const [t, v] of s.points) column[index.get(t)] = Number.isNaN(v) ? null : v;
    return column;
  });
  return [times, ...columns];
}

function timeseriesPanel(body, panel, width, height) {
  const unit = panel.defaults.unit;
  const axis = { stroke: "#8e8ea0", grid: { stroke: "#2a2d33", width: 1 }, ticks: { stroke: "#2a2d33" } };
  const legendRows = Math.ceil(panel.series.length / 3);
  const plot = new uPlot(
    {
      width,
      height: height - 30 - 18 * legendRows,
      legend: { show: true, live: false },
      cursor: { show: false },
      scales: {
        x: { time: true, range: [window.PAGE.from, window.PAGE.to] },
        // From zero, as Grafana's panels here: a flat 0 stays a flat line at the bottom.
        y: { range: (_, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] },
      },
      axes: [
        { ...axis },
        { ...axis, size: 84, values: (_, ticks) => ticks.map((t) => format(t, unit, 1)) },
      ],
      series: [
        {},
        ...panel.series.map((s, i) => ({
          label: s.name,
          stroke: PALETTE[i % PALETTE.length],
          width: 1.5,
          points: { show: false },
          fill: `${PALETTE[i % PALETTE.length]}1a`,
          value: (_, v) => format(v, unit),
        })),
      ],
    },
    aligned(panel.series),
  );
  body.append(plot.root);
}

function render() {
  const page = window.PAGE;
  document.getElementById("title").textContent = page.title;
  document.getElementById("caption").textContent = page.caption;
  const grid = document.getElementById("grid");
  const column = page.width / 24;
  let bottom = 0;
  for (const panel of page.panels) {
    const { x, y, w, h } = panel.gridPos;
    const box = document.createElement("section");
    box.className = "panel";
    Object.assign(box.style, {
      left: `${x * column}px`,
      top: `${y * page.rowHeight}px`,
      width: `${w * column - 6}px`,
      height: `${h * page.rowHeight - 6}px`,
    });
    box.innerHTML = "<h2></h2>";
    box.querySelector("h2").textContent = panel.title;
    grid.append(box);
    bottom = Math.max(bottom, (y + h) * page.rowHeight);
    try {
      if (panel.series.length === 0) {
        box.insertAdjacentHTML("beforeend", '<div class="empty">No data</div>');
      } else if (panel.type === "stat") {
        statPanel(box, panel);
      } else {
        timeseriesPanel(box, panel, w * column - 24, h * page.rowHeight - 12);
      }
    } catch (error) {
      window.renderErrors.push(`${panel.title}: ${error}`);
    }
  }
  grid.style.height = `${bottom}px`;
  window.rendered = true;
}

render();
