// Renders a Grafana dashboard's stat and time-series panels from its JSON file
// and a real Prometheus's data, in headless Chromium, to a PNG: the README's
// picture of a dashboard where no Grafana runs (the image says so in its header).
// Same queries, same layout (gridPos), units, legends, value mappings and
// threshold colours; drawn with uPlot, the chart library Grafana itself uses.
//
//   node render-dashboard.mjs --prometheus http://127.0.0.1:9090 \
//        --dashboard ../grafana/dashboards/shop-overview.json --out overview.png \
//        --from <epoch s> --to <epoch s> [--step 2] [--rate-interval 30s]
//
// Chromium: CHROMIUM_PATH (default /usr/bin/chromium).
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const GRID_WIDTH = 1600;
const ROW_HEIGHT = 30;

const { values: args } = parseArgs({
  options: {
    prometheus: { type: "string" },
    dashboard: { type: "string" },
    out: { type: "string" },
    from: { type: "string" },
    to: { type: "string" },
    step: { type: "string", default: "2" },
    "rate-interval": { type: "string", default: "30s" },
    caption: { type: "string", default: "" },
  },
});
for (const required of ["prometheus", "dashboard", "out", "from", "to"]) {
  if (!args[required]) throw new Error(`--${required} is required`);
}

/** The panel's query with Grafana's built-in variables filled in. */
function expand(expr, rangeSeconds) {
  return expr
    .replaceAll("$__rate_interval", args["rate-interval"])
    .replaceAll("$__interval", `${args.step}s`)
    .replaceAll("$__range", `${Math.round(rangeSeconds)}s`);
}

async function queryRange(expr) {
  const url = new URL("/api/v1/query_range", args.prometheus);
  const range = Number(args.to) - Number(args.from);
  url.search = new URLSearchParams({
    query: expand(expr, range),
    start: args.from,
    end: args.to,
    step: args.step,
  });
  const answer = await (await fetch(url)).json();
  if (answer.status !== "success") throw new Error(`${expr}: ${answer.error}`);
  return answer.data.result;
}

/** `{{label}}` in a legend format, as Grafana fills it. */
function legend(format, metric) {
  if (!format) return JSON.stringify(metric);
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, name) => metric[name] ?? "");
}

async function panelData(panel) {
  const series = [];
  for (const target of panel.targets ?? []) {
    for (const result of await queryRange(target.expr)) {
      series.push({
        name: legend(target.legendFormat, result.metric),
        points: result.values.map(([t, v]) => [t, Number(v)]),
      });
    }
  }
  return series;
}

async function main() {
  const dashboard = JSON.parse(await readFile(args.dashboard, "utf8"));
  const panels = [];
  for (const panel of dashboard.panels) {
    if (!["stat", "timeseries"].includes(panel.type)) continue;
    panels.push({
      title: panel.title,
      type: panel.type,
      gridPos: panel.gridPos,
      defaults: panel.fieldConfig?.defaults ?? {},
      series: await panelData(panel),
    });
  }
  const page = {
    title: dashboard.title,
    caption: args.caption,
    width: GRID_WIDTH,
    rowHeight: ROW_HEIGHT,
    from: Number(args.from),
    to: Number(args.to),
    panels,
  };
  const uplot = join(here, "node_modules/uplot/dist");
  const html = (await readFile(join(here, "page.html"), "utf8"))
    .replace("/*UPLOT_CSS*/", await readFile(join(uplot, "uPlot.min.css"), "utf8"))
    .replace("/*UPLOT_JS*/", await readFile(join(uplot, "uPlot.iife.min.js"), "utf8"))
    .replace("/*PAGE_JS*/", await readFile(join(here, "page.js"), "utf8"))
    .replace("/*DATA*/null", JSON.stringify(page));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  try {
    const tab = await browser.newPage({ viewport: { width: GRID_WIDTH + 32, height: 800 } });
    await tab.setContent(html);
    await tab.waitForFunction(() => window.rendered === true);
    const errors = await tab.evaluate(() => window.renderErrors);
    if (errors.length) throw new Error(errors.join("\n"));
    await tab.screenshot({ path: args.out, fullPage: true });
  } finally {
    await browser.close();
  }
  const counts = panels.map((p) => `${p.title}: ${p.series.length}`).join(", ");
  console.log(`rendered ${panels.length} panels of "${dashboard.title}" to ${args.out} (series: ${counts})`);
}

await main();
