// posttrain viewer: a small hash-routed page over the JSON API. No framework, no build step.
// Charts: Vega-Lite through vega-embed, vendored under static/vendor/ (works offline).
"use strict";

const app = document.getElementById("app");
const statusEl = document.getElementById("status");
let flash = "";  // a message to show once on the next rendered page
let keyHandler = null;  // the current page's keyboard handler (the matrix's)

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

const fmt = (v, digits = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
const usd = v => (v === null || v === undefined ? "–" : v === 0 ? "$0" : v < 0.01 ? `$${Number(v).toPrecision(2)}` : `$${Number(v).toFixed(2)}`);
// a run's cost: none recorded (no price for a local model, or every answer cached) is not "$0",
// as `posttrain report` prints "-" for it
const runUsd = (v, none = "–") => (v ? usd(v) : none);
const secs = v => (v === null || v === undefined ? "–" : `${Number(v).toFixed(2)}s`);
const pct = (n, d) => (d ? `${Math.round((100 * n) / d)}%` : "–");
const enc = encodeURIComponent;
const when = t => new Date(t * 1000).toISOString().slice(0, 16).replace("T", " ");

// a model's short name, its full name on hover
const modelName = (run) => h("span", {class: "model", title: run.model}, run.short || run.model);

function scoreCell(score) {
  if (!score || score.mean === null) return h("td", {}, "–");
  const ci = score.low === null ? "" : ` [${fmt(score.low, 2)}, ${fmt(score.high, 2)}]`;
  return h("td", {}, fmt(score.mean), h("span", {class: "ci"}, ci), h("span", {class: "ci"}, ` n=${score.n}`));
}

function statusLabel(row) {
  return row.status === "scored" ? (row.passed === true ? "pass" : row.passed === false ? "fail" : "scored") : row.status;
}

function statusCell(row) {
  const label = statusLabel(row);
  return h("td", {class: label}, label);
}

function show(...nodes) {
  keyHandler = null;
  app.replaceChildren(...nodes.flat(Infinity).filter(n => n !== null && n !== undefined && n !== false));
}

// ---- charts ---------------------------------------------------------------------------------
const EMBED = {actions: {export: true, source: false, compiled: false, editor: false}, renderer: "svg"};

// the library (840 kB) is loaded on the first page that draws a chart, from this server
let chartLibrary = null;
function loadCharts() {
  const load = (src) => new Promise((resolve, reject) => {
    const script = h("script", {src});
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
  chartLibrary ??= ["vega", "vega-lite", "vega-embed"].reduce(
    (done, name) => done.then(() => load(`static/vendor/${name}.min.js`)), Promise.resolve());
  return chartLibrary;
}

function chart(name, spec, caption) {
  const target = h("div", {class: "vchart"});
  const fig = h("figure", {"data-chart": name}, target, caption ? h("figcaption", {}, caption) : null);
  const full = {$schema: "https://vega.github.io/schema/vega-lite/v6.json", background: "white",
    config: {font: "system-ui, sans-serif", axis: {labelFontSize: 11, titleFontSize: 12}, view: {stroke: null}}, ...spec};
  loadCharts()
    .then(() => vegaEmbed(target, full, {...EMBED, downloadFileName: name}))
    .then(() => fig.setAttribute("data-ready", "1"))
    .catch(err => { target.replaceChildren(h("p", {class: "error"}, `Chart error: ${err.message}`)); fig.setAttribute("data-ready", "error"); });
  return fig;
}

function tagChart(rows) {
  return chart("score-by-tag", {
    width: 360, height: {step: 22},
    data: {values: rows.map(r => ({...r, label: `${r.tag} (n=${r.n})`}))},
    encoding: {y: {field: "label", type: "nominal", sort: null, title: null}},
    layer: [
      {mark: {type: "bar", color: "#7aa2ea", height: 14},
       encoding: {x: {field: "mean", type: "quantitative", scale: {domain: [0, 1]}, title: "score (every item; no score counts 0)"},
         tooltip: [{field: "tag"}, {field: "mean", format: ".3f"}, {field: "low", format: ".3f", title: "95% CI low"}, {field: "high", format: ".3f", title: "95% CI high"}, {field: "n", title: "items"}]}},
      {mark: {type: "rule", color: "#1d2430", strokeWidth: 2},
       encoding: {x: {field: "low", type: "quantitative", scale: {domain: [0, 1]}, title: "score (every item; no score counts 0)"}, x2: {field: "high"}}},
    ],
  }, "Score by tag with 95% CI");
}

// the histogram comes counted from the server (bars of one width, at most 30), whatever the run's size
function latencyChart(hist) {
  if (!hist.n) return h("figure", {"data-chart": "latency"}, h("p", {class: "muted"}, "No latencies recorded."));
  return chart("latency", {
    width: 360, height: 180, data: {values: hist.bins},
    mark: {type: "bar", color: "#7aa2ea", tooltip: true},
    encoding: {x: {field: "start", bin: {binned: true, step: hist.step}, type: "quantitative", title: "latency per answer (s)"},
      x2: {field: "end"},
      y: {field: "count", type: "quantitative", title: "answers", axis: {tickMinStep: 1, format: "d"}}},
  }, `Latency, ${hist.n} answers`);
}

// the frontier of `pick`: cheapest (or fastest) point for its score; cost when any is known
function frontierChart(peers) {
  // cost when every run's is known (stored, or tokens at a known price) and not all $0;
  // else p95 latency, so no run is dropped from the picture for want of a price
  const costUnknown = peers.filter(p => p.cost_per_sample === null);
  const useCost = costUnknown.length === 0 && peers.some(p => p.cost_per_sample > 0);
  const xField = useCost ? "cost_per_sample" : "latency_p95";
  const points = peers.filter(p => p[xField] !== null && p.score !== null);
  const left = peers.filter(p => !points.includes(p)).map(p => p.label);
  if (!points.length) return h("figure", {"data-chart": "frontier"}, h("p", {class: "muted"}, "No cost or latency recorded."));
  const sorted = [...points].sort((a, b) => a[xField] - b[xField] || b.score - a.score);
  let best = -1;
  const front = sorted.filter(p => (p.score > best ? ((best = p.score), true) : false));
  const maxX = Math.max(...points.map(p => p[xField]));
  const WIDTH = 420, HEIGHT = 240, CHAR = 7;  // the plot in px; an 11px label's widest mean character
  // labels point away from the right edge and are cut to the room on their side (a long path keeps
  // its last parts), so no name runs over the axis; a label that would overlap one already placed
  // moves down (or up, near the bottom) a line at a time, so close points keep readable names
  const LINE = 15;
  const placed = [];
  const overlaps = (a, b) => a.x0 < b.x1 && b.x0 < a.x1 && Math.abs(a.y - b.y) < LINE;
  const values = [...points].sort((a, b) => b.score - a.score || a[xField] - b[xField]).map(p => {
    const side = maxX > 0 && p[xField] > maxX / 2 ? "right" : "left";
    const frac = maxX > 0 ? p[xField] / maxX : 0;
    const room = Math.max(8, Math.floor(((side === "right" ? frac : 1 - frac) * WIDTH - 12) / CHAR));
    const text = p.label.length > room ? "…" + p.label.slice(p.label.length - room + 1) : p.label;
    const px = frac * WIDTH, w = text.length * CHAR;
    const box = {x0: side === "right" ? px - 7 - w : px + 7, x1: side === "right" ? px - 7 : px + 7 + w, y: p.score * HEIGHT};
    for (let down = true, tries = 0; placed.some(q => overlaps(box, q)) && tries < 200; tries++) {
      box.y += down ? -LINE : LINE;
      if (down && box.y < LINE) { down = false; box.y = p.score * HEIGHT; }
    }
    placed.push(box);
    return {...p, text, label_y: box.y / HEIGHT, side,
      frontier: front.includes(p) ? "on the frontier" : "dominated", who: p.this ? "this run" : "other run"};
  });
  const label = (side) => ({data: {values}, transform: [{filter: `datum.side === '${side}'`}],
    mark: {type: "text", align: side === "left" ? "left" : "right", dx: side === "left" ? 7 : -7, dy: -8, fontSize: 11},
    encoding: {x: {field: xField, type: "quantitative"}, y: {field: "label_y", type: "quantitative"}, text: {field: "text"},
      tooltip: [{field: "label", title: "model"}]}});
  const sides = new Set(values.map(v => v.side));
  const xTitle = useCost ? "cost per answer (USD)" : "p95 latency (s)";
  return chart("frontier", {
    width: WIDTH, height: HEIGHT,
    layer: [
      {data: {values: front}, mark: {type: "line", strokeDash: [4, 3], color: "#1e8e3e", point: false},
       encoding: {x: {field: xField, type: "quantitative"}, y: {field: "score", type: "quantitative"}}},
      {data: {values}, mark: {type: "rule", color: "#98a2b3"},
       encoding: {x: {field: xField, type: "quantitative"}, y: {field: "low", type: "quantitative"}, y2: {field: "high"}}},
      {data: {values}, mark: {type: "point", filled: true, size: 70},
       encoding: {x: {field: xField, type: "quantitative", title: xTitle, scale: {zero: true, nice: true},
           axis: useCost ? {format: "$.2~g"} : {}},
         y: {field: "score", type: "quantitative", scale: {domain: [0, 1]}, title: "score (95% CI)"},
         color: {field: "who", type: "nominal", scale: {domain: ["this run", "other run"], range: ["#2f6fdf", "#667085"]}, legend: null},
         tooltip: [{field: "model", title: "model"}, {field: "variant"}, {field: "score", format: ".3f"},
           {field: "low", format: ".3f", title: "CI low"}, {field: "high", format: ".3f", title: "CI high"},
           {field: "cost_per_sample", format: "$.3~g", title: "cost / answer"}, {field: "latency_p95", format: ".2f", title: "p95 latency s"}, {field: "frontier"}]}},
      ...["left", "right"].filter(side => sides.has(side)).map(label),  // no empty layer (an infinite extent)
    ],
  }, (useCost ? "Cost vs score: latest run of each model × variant (frontier dashed)"
    : `p95 latency vs score (${costUnknown.length ? `cost unknown for ${costUnknown.length} of ${peers.length} runs` : "every cost is $0"}): latest run of each model × variant (frontier dashed)`)
    + (left.length ? `; not drawn (no ${useCost ? "cost" : "latency"}): ${left.join(", ")}` : ""));
}

// a date axis' label format as fine as the span of its dates needs, so ticks read apart (runs
// a few seconds apart were all "Nov 30 16:38")
function dateFormat(times) {
  const span = Math.max(...times) - Math.min(...times);  // ms
  return span < 10e3 ? "%H:%M:%S.%L" : span < 3600e3 ? "%H:%M:%S" : span < 3 * 86400e3 ? "%b %d %H:%M" : "%Y-%m-%d";
}

function historyChart(rows) {
  if (rows.length < 2) return null;
  // by the model's release date when every run's model has one (shelf life), else by run date
  const byRelease = rows.every(r => r.released);
  const x = byRelease
    ? {field: "released", type: "temporal", title: "model release date", scale: {padding: 14},
       axis: {format: "%Y-%m-%d", labelAngle: 0, tickCount: 4, labelOverlap: true}}
    : {field: "created", type: "temporal", title: "run date", scale: {padding: 14},
       axis: {format: dateFormat(rows.map(r => r.created)), labelAngle: 0, tickCount: 4, labelOverlap: true}};
  return chart("score-over-time", {
    width: 380, height: 200, data: {values: rows},
    encoding: {x,
      color: {field: "label", type: "nominal", title: null, legend: {orient: "bottom", columns: 2, labelLimit: 260}}},
    layer: [
      {mark: {type: "rule", opacity: 0.6}, encoding: {y: {field: "low", type: "quantitative"}, y2: {field: "high"}}},
      {mark: {type: "line", point: {filled: true, size: 50}},
       encoding: {y: {field: "score", type: "quantitative", scale: {domain: [0, 1]}, title: "score (95% CI)"},
         tooltip: [{field: "model"}, {field: "run"}, {field: "created", type: "temporal", timeUnit: "yearmonthdatehoursminutes", title: "run date"}, {field: "released", title: "released"},
           {field: "score", format: ".3f"}, {field: "low", format: ".3f", title: "CI low"}, {field: "high", format: ".3f", title: "CI high"}]}},
    ],
  }, byRelease ? `Shelf life: the latest ${rows.length} runs of this eval by their model's release date`
    : `Score over time: the latest ${rows.length} runs of this eval by run date${rows.some(r => r.released) ? " (some models have no released: date in the models file)" : ""}`);
}

function heatmapChart(cells) {
  if (!cells.length) return null;
  return chart("length-depth", {
    width: {step: 36}, height: {step: 22}, data: {values: cells},
    encoding: {x: {field: "length", type: "ordinal", title: "context length (tokens)"},
      y: {field: "depth", type: "ordinal", sort: "ascending", title: "needle depth", axis: {format: ".2f"}}},
    layer: [
      {mark: "rect", encoding: {color: {field: "score", type: "quantitative", scale: {domain: [0, 1], scheme: "redyellowgreen"}, title: "score"},
        tooltip: [{field: "length"}, {field: "depth", format: ".2f"}, {field: "score", format: ".3f"}]}},
      {mark: {type: "text", fontSize: 10}, encoding: {text: {field: "score", format: ".2f"}}},
    ],
  }, "Score by context length × needle depth");
}

function pairedChart(groups, labelA, labelB) {
  const values = groups.filter(g => g.diff !== null).map(g => ({...g, label: `${g.group} (n=${g.n})`,
    sig: g.significant ? "significant" : "not significant"}));
  if (!values.length) return null;
  const Y = {field: "label", type: "nominal", sort: null, title: null};
  return chart("paired-by-tag", {
    width: 380, height: {step: 22}, data: {values},
    layer: [
      {data: {values: [{zero: 0}]}, mark: {type: "rule", color: "#475467", strokeDash: [3, 3]},
       encoding: {x: {field: "zero", type: "quantitative"}}},
      {mark: {type: "rule", strokeWidth: 2}, encoding: {y: Y, x: {field: "ci_low", type: "quantitative", title: `${labelB} − ${labelA} (paired, 95% CI)`}, x2: {field: "ci_high"},
        color: {field: "sig", type: "nominal", scale: {domain: ["significant", "not significant"], range: ["#c0392b", "#98a2b3"]}, title: null}}},
      {mark: {type: "point", filled: true, size: 60, color: "#1d2430"},
       encoding: {y: Y, x: {field: "diff", type: "quantitative"}, tooltip: [{field: "group"}, {field: "n"}, {field: "mean_a", format: ".3f", title: "A"},
         {field: "mean_b", format: ".3f", title: "B"}, {field: "diff", format: "+.3f"}, {field: "ci_low", format: "+.3f"}, {field: "ci_high", format: "+.3f"}, {field: "p_value", format: ".3g"}]}},
    ],
  }, "Paired difference B − A by tag (every item, no score counts 0)");
}

function rewardChart(log) {
  const values = [];
  for (const e of log) {
    if (e.reward !== undefined && e.reward !== null)
      values.push({step: e.step, value: e.reward, low: e.reward - (e.reward_std || 0), high: e.reward + (e.reward_std || 0), series: "train reward (mean ± sd of the group)"});
    if (e.validation !== undefined && e.validation !== null)
      values.push({step: e.step, value: e.validation, low: null, high: null, series: "validation reward"});
  }
  if (!values.length) return h("figure", {"data-chart": "reward"}, h("p", {class: "muted"}, "No step logged yet."));
  return chart("reward", {
    width: 460, height: 220, data: {values},
    encoding: {x: {field: "step", type: "quantitative", title: "GRPO step", axis: {tickMinStep: 1}},
      color: {field: "series", type: "nominal", title: null, legend: {orient: "bottom"}}},
    layer: [
      {transform: [{filter: "datum.low !== null"}], mark: {type: "area", opacity: 0.15},
       encoding: {y: {field: "low", type: "quantitative"}, y2: {field: "high"}}},
      {mark: {type: "line", point: {filled: true, size: 40}},
       encoding: {y: {field: "value", type: "quantitative", title: "reward (the eval's graders)", scale: {zero: true}},
         tooltip: [{field: "series"}, {field: "step"}, {field: "value", format: ".3f", title: "reward"}]}},
    ],
  }, "Reward per GRPO step: training groups and the validation split");
}

// ---- training -------------------------------------------------------------------------------
async function pageTraining() {
  const jobs = await api("api/training");
  show(h("h1", {}, "Training jobs"),
    jobs.length ? h("table", {id: "jobs"}, h("thead", {}, h("tr", {}, ["job", "kind", "model", "eval", "status", "log entries", "started"].map(t => h("th", {}, t)))),
      h("tbody", {}, jobs.map(j => h("tr", {"data-job": j.id},
        h("td", {}, h("a", {href: `#/training/${enc(j.id)}`}, j.id)), h("td", {}, j.kind),
        h("td", {}, h("span", {class: "model", title: j.model}, j.model.split("/").slice(-2).join("/"))),
        h("td", {}, j.eval_name || "–"), h("td", {class: j.status}, j.status), h("td", {}, j.log_entries), h("td", {}, when(j.created))))))
      : h("p", {}, "No training jobs in this store yet (posttrain train rft records them here)."));
}

async function pageTrainingJob(jobId) {
  const job = await api(`api/training/${enc(jobId)}`);
  const r = job.result || {};
  const facts = [`${job.kind} of `, h("span", {class: "model", title: job.model}, job.model), ` on ${job.eval_name || "–"} · ${job.status}`,
    ` · started ${when(job.created)}`, job.finished ? ` · ended ${when(job.finished)}` : ""];
  const outcome = r.baseline !== undefined ? h("p", {id: "outcome"},
    `held-out before ${fmt(r.baseline)} → after ${fmt(r.after)} (n=${r.n}); paired difference ${r.diff === null ? "–" : (r.diff >= 0 ? "+" : "") + fmt(r.diff)} `,
    r.ci ? `[95% CI ${fmt(r.ci[0])}, ${fmt(r.ci[1])}], ${r.test} p = ${r.p_value === null ? "–" : Number(r.p_value).toPrecision(3)}` : "",
    (r.runs || []).length === 2 ? [" · ", h("a", {href: `#/compare/${enc(r.runs[0])}/${enc(r.runs[1])}`}, "before vs after, side by side")] : null)
    : r.error ? h("p", {class: "error"}, r.error) : null;
  show(h("h1", {}, `Training job ${job.id}`), h("p", {}, facts), outcome, h("div", {class: "charts"}, rewardChart(job.log)),
    job.status === "running" ? h("p", {class: "muted"}, "Running: reload for new steps.") :
    job.status === "died" ? h("p", {class: "muted"}, "Its training process is gone without writing an end (killed): the steps logged are kept, nothing was saved after them.") : null);
}

// ---- runs -----------------------------------------------------------------------------------
async function pageRuns() {
  const runs = await api("api/runs");
  const picked = new Set();
  const side = h("button", {id: "btn-compare", disabled: true, onclick: () => go("compare")}, "Side by side");
  const vote = h("button", {id: "btn-vote", disabled: true, onclick: () => go("arena")}, "Blind vote");
  function go(kind) { const [a, b] = [...picked]; location.hash = `#/${kind}/${enc(a)}/${enc(b)}`; }
  function refresh() { side.disabled = vote.disabled = picked.size !== 2; }
  const evals = [...new Set(runs.map(r => r.eval))];
  const rows = runs.map(run => h("tr", {class: "click", "data-run": run.id},
    h("td", {}, h("input", {type: "checkbox", "aria-label": `pick ${run.id}`, onclick: e => {
      e.stopPropagation(); e.target.checked ? picked.add(run.id) : picked.delete(run.id); refresh(); }})),
    h("td", {}, h("a", {href: `#/run/${enc(run.id)}`}, run.id)),
    h("td", {}, h("a", {href: `#/matrix/${enc(run.eval)}`, title: "matrix of this eval"}, run.eval)),
    h("td", {}, modelName(run)), h("td", {}, run.variant),
    scoreCell(run.score), h("td", {}, run.pass_rate === null ? "–" : fmt(run.pass_rate, 2)),
    h("td", {title: "scored samples / expected (items × epochs)"}, `${run.coverage.scored}/${run.coverage.expected}`),
    h("td", {}, Object.entries(run.statuses).map(([k, v]) => h("span", {class: `pill ${k}`}, `${k} ${v}`))),
    h("td", {title: run.cost_usd ? null : "no cost recorded"}, runUsd(run.cost_usd)), h("td", {}, secs(run.latency.p50))));
  show(h("h1", {}, "Runs"),
    evals.length ? h("p", {}, "Matrix of items × models: ", evals.map(e => h("a", {class: "pill link", href: `#/matrix/${enc(e)}`}, e))) : null,
    h("div", {class: "toolbar"}, h("span", {class: "muted"}, "Pick two runs of the same eval:"), side, vote),
    runs.length ? h("table", {id: "runs"}, h("thead", {}, h("tr", {}, ["", "run", "eval", "model", "variant",
      "score [95% CI]", "pass rate", "coverage", "samples", "cost", "p50 latency"].map(t => h("th", {}, t)))), h("tbody", {}, rows))
      : h("p", {}, "No runs in this store yet."));
}

// ---- a run ----------------------------------------------------------------------------------
const SAMPLE_LIMIT = 500;

async function pageRun(runId, params) {
  const run = await api(`api/runs/${enc(runId)}`);
  const filter = params.get("filter") || "all", tag = params.get("tag") || "", grader = params.get("grader") || "";
  const query = new URLSearchParams({filter, tag, grader, limit: SAMPLE_LIMIT});
  const response = await fetch(`api/runs/${enc(runId)}/samples?${query}`);
  const samples = await response.json();
  if (!response.ok) throw new Error(samples.error || response.statusText);
  const total = Number(response.headers.get("X-Total-Count") || samples.length);
  const setParam = (key, value) => { params.set(key, value); location.hash = `#/run/${enc(runId)}?${params}`; };
  const select = (id, key, options, value) => h("select", {id, "aria-label": key, onchange: e => setParam(key, e.target.value)},
    options.map(([v, label]) => h("option", {value: v, selected: v === value}, label)));
  const tags = Object.entries(run.tags);
  // "Compare with": the other runs of this eval, told apart by short name, variant and time
  const others = run.others.map(o => h("li", {},
    h("a", {href: `#/compare/${enc(run.id)}/${enc(o.id)}`, title: `${o.model} · ${o.id}`}, modelName(o), ` [${o.variant}] `, h("span", {class: "muted"}, when(o.created))),
    " · ", h("a", {href: `#/arena/${enc(run.id)}/${enc(o.id)}`}, "blind vote")));
  show(
    h("h1", {}, run.eval, " · ", modelName(run), h("span", {class: "muted"}, ` [${run.variant}] ${run.id}`)),
    h("p", {}, "Score ", h("strong", {id: "run-score"}, fmt(run.score.mean)),
      run.score.low === null ? "" : h("span", {class: "ci"}, ` 95% CI [${fmt(run.score.low)}, ${fmt(run.score.high)}]`),
      ` · ${run.samples} samples · `, Object.entries(run.statuses).map(([k, v]) => h("span", {class: `pill ${k}`}, `${k} ${v}`)),
      ` · ${runUsd(run.cost_usd, "no cost recorded")} · `, h("a", {href: `#/matrix/${enc(run.eval)}`}, "matrix of this eval")),
    run.others.length ? h("details", {class: "others"}, h("summary", {}, `Compare with (${run.others.length} other runs of ${run.eval})`), h("ul", {}, others)) : null,
    h("div", {class: "charts"},
      run.charts.tags.length ? tagChart(run.charts.tags) : null,
      latencyChart(run.charts.latency),
      frontierChart(run.charts.peers),
      historyChart(run.charts.history),
      heatmapChart(run.charts.heatmap)),
    h("h2", {}, "Samples"),
    h("div", {class: "toolbar"},
      select("filter", "filter", [["all", "all"], ["failed", "failed"], ["passed", "passed"], ["unscored", "unscored"], ["errors", "errors"]], filter),
      select("tag", "tag", [["", "any tag"], ...tags.map(([t]) => [t, t])], tag),
      select("grader", "grader", [["", "any grader"], ...run.graders.map(g => [g, g])], grader),
      h("span", {class: "muted", id: "count"}, total > samples.length ? `first ${samples.length} of ${total} shown (the matrix pages through all)` : `${samples.length} shown`)),
    h("table", {id: "samples"}, h("thead", {}, h("tr", {}, ["item", "status", "score", "tags", "output", "why"].map(t => h("th", {}, t)))),
      h("tbody", {}, samples.map(s => h("tr", {class: "click", "data-item": s.item_id,
        onclick: () => (location.hash = `#/sample/${enc(runId)}/${enc(s.item_id)}/${s.epoch}`)},
        h("td", {}, s.item_id + (s.epoch ? ` #${s.epoch}` : "")), statusCell(s), h("td", {}, fmt(s.value)),
        h("td", {}, s.tags.map(t => h("span", {class: "pill"}, t))), h("td", {dir: "auto"}, s.output), h("td", {class: "muted"}, s.reason))))));
}

// ---- the matrix -----------------------------------------------------------------------------
const MATRIX_LIMIT = 100;
const MATRIX_KEYS = ["status", "tag", "q", "disagree", "changed", "sort", "col", "offset", "runs"];

async function pageMatrix(evalName, params) {
  const query = new URLSearchParams({eval: evalName, limit: MATRIX_LIMIT});
  for (const key of MATRIX_KEYS) if (params.get(key)) query.set(key, params.get(key));
  const m = await api(`api/matrix?${query}`);
  const setParams = (changes) => {
    for (const [k, v] of Object.entries(changes)) (v === "" || v === null || v === false) ? params.delete(k) : params.set(k, v);
    if (!("offset" in changes)) params.delete("offset");
    location.hash = `#/matrix/${enc(evalName)}${params.toString() ? "?" + params : ""}`;
  };
  const offset = m.offset || 0;
  const exportQuery = new URLSearchParams(query);
  exportQuery.delete("limit"); exportQuery.delete("offset");
  const search = h("input", {id: "matrix-search", type: "search", "aria-label": "search items and answers", placeholder: "search items and answers  ( / )", value: params.get("q") || "", size: 32,
    onkeydown: e => { if (e.key === "Enter") setParams({q: e.target.value.trim()}); }});
  const check = (id, key, label) => h("label", {}, h("input", {type: "checkbox", id, checked: params.get(key) === "1",
    onchange: e => setParams({[key]: e.target.checked ? "1" : ""})}), ` ${label}`);
  const statusSel = h("select", {id: "matrix-status", "aria-label": "status", onchange: e => setParams({status: e.target.value})},
    [["", "any status"], ["pass", "a pass"], ["fail", "a fail"], ["scored", "scored (no pass/fail)"], ["unscored", "unscored"], ["error", "an error"], ["missing", "missing"]]
      .map(([v, label]) => h("option", {value: v, selected: (params.get("status") || "") === v}, label)));
  const tagSel = h("select", {id: "matrix-tag", "aria-label": "tag", onchange: e => setParams({tag: e.target.value})},
    [["", "any tag"], ...m.tags.map(t => [t, t])].map(([v, label]) => h("option", {value: v, selected: (params.get("tag") || "") === v}, label)));
  const copied = h("span", {class: "muted", id: "permalink-done", role: "status"});
  const permalink = h("button", {class: "secondary", id: "btn-permalink", onclick: async () => {
    const url = location.href;
    try { await navigator.clipboard.writeText(url); copied.textContent = "link copied"; }
    catch { copied.textContent = url; }
  }}, "Copy permalink");
  const sortCol = Number(params.get("col") || 0), sort = params.get("sort") || "item";
  const header = m.columns.map((c, i) => {
    const cov = c.coverage;
    const arrow = sortCol === i && sort !== "item" ? (sort === "score" ? " ▲" : " ▼") : "";
    return h("th", {class: "col", scope: "col", "data-col": i},
      h("div", {class: "col-name"}, h("a", {href: `#/run/${enc(c.run)}`, title: `${c.model} [${c.variant}] · run ${c.run}`}, c.short), ` [${c.variant}]`),
      h("div", {class: "col-score"}, h("button", {class: "link sort", title: "sort by this column's score", onclick: () =>
        setParams({sort: sortCol === i && sort === "score" ? "-score" : "score", col: i})}, `${fmt(c.score.mean)}${arrow}`),
        c.score.low === null ? "" : h("span", {class: "ci"}, ` [${fmt(c.score.low, 2)}, ${fmt(c.score.high, 2)}]`)),
      h("div", {class: "col-meta", title: "scored answers / expected (items × epochs) · cost · p50 / p95 latency"},
        `cov ${cov.scored}/${cov.expected} (${pct(cov.scored, cov.expected)}) · ${runUsd(c.cost_usd, "no cost")} · ${secs(c.latency.p50)} / ${secs(c.latency.p95)}`),
      c.previous_run ? h("div", {class: "muted small"}, "vs ", h("a", {href: `#/run/${enc(c.previous_run)}`}, "previous run")) : null);
  });
  const body = m.rows.map((row, r) => h("tr", {"data-item": row.item_id},
    h("th", {class: "item", scope: "row"}, h("div", {class: "item-id"}, row.item_id),
      h("div", {class: "preview", title: row.preview}, row.preview), row.tags.map(t => h("span", {class: "pill"}, t))),
    row.cells.map((cell, c) => matrixCell(m, row, cell, r, c))));
  const pages = h("div", {class: "toolbar"},
    h("span", {class: "muted", id: "matrix-count"}, m.total ? `rows ${offset + 1}–${offset + m.rows.length} of ${m.total} items` : "no item matches"),
    h("button", {class: "secondary", id: "btn-prev", disabled: offset === 0, onclick: () => setParams({offset: Math.max(0, offset - MATRIX_LIMIT)})}, "← previous"),
    h("button", {class: "secondary", id: "btn-more", disabled: offset + m.rows.length >= m.total, onclick: () => setParams({offset: offset + MATRIX_LIMIT})}, "next →"));
  show(
    h("h1", {}, `Matrix · ${m.eval}`, h("span", {class: "muted"}, ` · ${m.columns.length} runs (latest of each model × variant)`)),
    h("div", {class: "toolbar", id: "matrix-filters"}, search, statusSel, tagSel,
      check("matrix-disagree", "disagree", "columns disagree"), check("matrix-changed", "changed", "changed since the previous run"),
      h("a", {class: "button secondary", id: "export-csv", href: `api/matrix?${exportQuery}&format=csv`, download: ""}, "CSV"),
      h("a", {class: "button secondary", id: "export-json", href: `api/matrix?${exportQuery}&format=json`, download: ""}, "JSON"),
      permalink, copied),
    h("p", {class: "muted small"}, "Keys: arrows move between cells, Enter opens the answer, / searches, n / p next / previous page. ",
      "Colours: ", ["pass", "fail", "scored", "unscored", "error", "missing"].map(s => h("span", {class: `chip ${s}`}, s))),
    pages,
    h("div", {class: "matrix-wrap"}, h("table", {id: "matrix"},
      h("thead", {}, h("tr", {}, h("th", {class: "corner"}, "item"), header)), h("tbody", {}, body))));
  // keyboard navigation over the cells
  let at = [0, 0];
  const cellAt = (r, c) => app.querySelector(`#matrix td[data-r="${r}"][data-c="${c}"]`);
  const focus = (r, c) => { const el = cellAt(r, c); if (el) { at = [r, c]; el.focus(); } };
  keyHandler = (e) => {
    if (e.target.matches("input, select, textarea")) {
      if (e.key === "Escape") e.target.blur();
      return;
    }
    const [r, c] = at;
    const moves = {ArrowDown: [r + 1, c], ArrowUp: [r - 1, c], ArrowRight: [r, c + 1], ArrowLeft: [r, c - 1], j: [r + 1, c], k: [r - 1, c]};
    if (moves[e.key]) { e.preventDefault(); focus(...moves[e.key]); }
    else if (e.key === "Enter" && document.activeElement?.dataset.href) location.hash = document.activeElement.dataset.href;
    else if (e.key === "/") { e.preventDefault(); search.focus(); }
    else if (e.key === "n" && offset + m.rows.length < m.total) setParams({offset: offset + MATRIX_LIMIT});
    else if (e.key === "p" && offset > 0) setParams({offset: Math.max(0, offset - MATRIX_LIMIT)});
  };
  app.querySelectorAll("#matrix td.cell").forEach(el => el.addEventListener("focus", () => (at = [Number(el.dataset.r), Number(el.dataset.c)])));
}

function matrixCell(m, row, cell, r, c) {
  const column = m.columns[c];
  const href = `#/sample/${enc(column.run)}/${enc(row.item_id)}/${cell.epoch || 0}`;
  const prev = cell.previous;
  let changed = null;
  if (column.previous_run) {
    const before = prev ? prev.status : "missing";
    const moved = before !== cell.status || (prev && prev.score !== null && cell.score !== null && Math.abs(prev.score - cell.score) > 1e-9);
    if (moved) changed = h("span", {class: "changed", title: `previous run: ${before}${prev && prev.score !== null ? " " + fmt(prev.score) : ""}`},
      !prev || prev.score === null || cell.score === null ? "≠" : cell.score > prev.score ? "▲" : cell.score < prev.score ? "▼" : "≠");
  }
  const text = cell.status === "error" ? (cell.error || "request failed") : cell.status === "missing" && !cell.answers ? "no answer" : (cell.output || "");
  return h("td", {class: `cell ${cell.status}`, tabindex: r === 0 && c === 0 ? "0" : "-1", "data-r": r, "data-c": c, "data-href": cell.answers ? href : null,
      "data-status": cell.status, ondblclick: () => cell.answers && (location.hash = href)},
    h("div", {class: "cell-head"}, h("span", {class: "badge"}, cell.status), cell.score === null ? "" : ` ${fmt(cell.score, 2)}`,
      cell.answers > 1 ? h("span", {class: "muted"}, ` ×${cell.answers}`) : null, cell.tool_calls ? h("span", {class: "muted"}, ` · ${cell.tool_calls} tool call(s)`) : null, changed,
      cell.answers ? h("a", {href, class: "open", title: "open this answer"}, "open") : null),
    h("div", {class: "cell-text", dir: "auto"}, text));
}

// ---- a sample: conversation, transcript, grades ----------------------------------------------
function contentText(content) {
  return typeof content === "string" ? content
    : Array.isArray(content) ? content.map(p => p.text || JSON.stringify(p)).join("\n") : content === null || content === undefined ? "" : JSON.stringify(content);
}

// long text folded: the first lines shown, the rest behind a click
function folded(text, limit = 1200) {
  if (text.length <= limit) return text;
  return h("details", {class: "fold"}, h("summary", {}, `${text.slice(0, 300)}… (${text.length} characters, show all)`), text);
}

function prettyArgs(raw) {
  try { return JSON.stringify(typeof raw === "string" ? JSON.parse(raw) : raw, null, 1); } catch { return String(raw); }
}

function messageView(m) {
  const parts = [h("span", {class: "role"}, m.role === "tool" ? `tool result${m.tool_call_id ? " · " + m.tool_call_id : ""}` : m.role)];
  // dir=auto: an Arabic or Hebrew text reads right to left, aligned right
  parts.push(h("div", {class: "content", dir: "auto"}, folded(contentText(m.content))));
  for (const call of m.tool_calls || []) {
    parts.push(h("div", {class: "call"}, h("span", {class: "call-name"}, `→ ${call.function?.name}`), h("span", {class: "muted"}, call.id ? ` ${call.id}` : ""),
      h("pre", {}, prettyArgs(call.function?.arguments))));
  }
  return h("div", {class: `msg ${m.role}`}, parts);
}

// a reviewer's corrections of this episode (posttrain view: pause, correct, continue)
function steeringView(records) {
  if (!records.length) return null;
  return h("section", {id: "steering"}, h("h3", {}, `Steered by a reviewer (${records.length} correction${records.length > 1 ? "s" : ""})`),
    records.map(r => h("div", {class: "intervention"},
      h("p", {}, `Before turn ${r.turn}${r.reviewer ? ` · by ${r.reviewer}` : ""}`),
      (r.edited_tool_results || []).map(e => h("div", {class: "edit"}, `Tool result ${e.tool_call_id || e.index} edited:`,
        h("del", {}, folded(contentText(e.before), 400)), h("ins", {}, folded(contentText(e.after), 400)))),
      r.added_message ? h("div", {class: "edit"}, "Message added: ", h("ins", {}, r.added_message.content)) : null,
      h("div", {class: "side"}, h("div", {}, h("strong", {}, "The model's next turn without the correction (never executed)"), messageView(r.original)),
        h("div", {}, h("strong", {}, "Its turn after the correction"), r.corrected ? messageView(r.corrected) : h("p", {class: "muted"}, "–"))))));
}

function transcriptView(transcript, meta, promptLength) {
  // the turns after the prompt: each assistant turn, its tool calls and their results
  const turns = transcript.slice(promptLength);
  const calls = meta.calls || [];
  const rows = calls.map(c => h("tr", {class: c.ok ? "" : "fail"}, h("td", {}, c.turn), h("td", {}, c.name),
    h("td", {}, h("code", {}, JSON.stringify(c.arguments ?? {}))), h("td", {class: c.ok ? "pass" : "fail"}, c.ok ? "ok" : c.fault ? `fault: ${c.fault}` : "failed"),
    h("td", {}, folded(c.error || c.result || "", 300))));
  const state = meta.final_state_hash ? h("p", {id: "state-check"}, "Environment state: ",
    meta.final_state_hash === meta.expected_state_hash ? h("strong", {class: "pass"}, "matches the expected final state")
      : meta.final_state_hash === meta.initial_state_hash ? h("strong", {class: "fail"}, "unchanged (expected a change)")
        : h("strong", {class: "fail"}, "differs from the expected final state"),
    h("span", {class: "muted"}, ` · initial ${String(meta.initial_state_hash).slice(0, 8)} → final ${String(meta.final_state_hash).slice(0, 8)}, expected ${String(meta.expected_state_hash).slice(0, 8)}`)) : null;
  const facts = [meta.turns !== undefined ? `${meta.turns} assistant turns` : null, meta.hit_turn_cap ? "stopped at the turn cap" : null,
    meta.faults_injected ? `faults injected: ${JSON.stringify(meta.faults_injected)}` : null].filter(Boolean).join(" · ");
  return h("section", {id: "transcript"}, h("h2", {}, `Transcript (${turns.length} messages after the prompt)`),
    facts ? h("p", {class: "muted"}, facts) : null, state, steeringView(meta.steering || []),
    calls.length ? h("table", {id: "tool-calls", class: "compact"}, h("thead", {}, h("tr", {}, ["turn", "tool", "arguments", "outcome", "result"].map(t => h("th", {}, t)))), h("tbody", {}, rows)) : null,
    h("div", {class: "turns"}, turns.map(m => messageView(m))));
}

function gradeView(g) {
  const subs = Object.entries(g.sub_scores || {});
  return h("div", {class: "grade"},
    h("strong", {}, g.name), " ", h("span", {class: g.status === "scored" ? (g.passed ? "pass" : g.passed === false ? "fail" : "scored") : g.status},
      g.status === "scored" ? `${fmt(g.score)} ${g.passed === true ? "pass" : g.passed === false ? "fail" : ""}` : g.status),
    g.confinement ? h("span", {class: "muted"}, ` · ran in ${g.confinement}`) : null,
    g.cost_usd ? h("span", {class: "muted"}, ` · judge ${usd(g.cost_usd)}`) : null,
    subs.length ? h("table", {class: "compact subs"}, h("tbody", {}, subs.map(([k, v]) => h("tr", {}, h("td", {}, k),
      h("td", {class: typeof v === "number" ? (v >= 1 ? "pass" : v <= 0 ? "fail" : "") : ""}, typeof v === "number" ? fmt(v) : JSON.stringify(v)))))) : null,
    h("div", {class: "explanation"}, folded(g.explanation || "", 800)));
}

async function pageSample(runId, itemId, epoch) {
  const s = await api(`api/runs/${enc(runId)}/samples/${enc(itemId)}?epoch=${epoch}`);
  const verdicts = ["misgraded", "ambiguous", "fine"];
  const fieldSelect = h("select", {id: "ref-field", "aria-label": "reference field to edit", onchange: e => (textarea.value = valueOf(e.target.value))},
    s.reference_fields.map(f => h("option", {value: f}, f)));
  const valueOf = f => (f ? (typeof s.item[f] === "string" ? s.item[f] : JSON.stringify(s.item[f])) : "");
  const textarea = h("textarea", {id: "ref-value", "aria-label": "reference"});
  textarea.value = valueOf(s.reference_fields[0]);
  const note = h("input", {id: "review-note", "aria-label": "review note", placeholder: "note (optional)", size: 50});
  const result = h("p", {id: "review-result", role: "status"}, flash);
  flash = "";
  const edit = h("input", {type: "checkbox", id: "ref-edit"});
  async function submit() {
    const verdict = app.querySelector("input[name=verdict]:checked");
    if (!verdict) { result.textContent = "Pick a verdict first."; return; }
    const body = {run: runId, item_id: itemId, epoch: Number(epoch), verdict: verdict.value, note: note.value};
    if (edit.checked && s.reference_fields.length) { body.field = fieldSelect.value; body.value = textarea.value; }
    try {
      const out = await api("api/review", body);
      // re-draw the page with the new grade, keeping the message on the new page
      flash = `Saved. Re-graded ${out.regraded} answer(s); score now ${fmt(out.sample.value)} (${out.sample.status}).`;
      // the review and the new reference are saved; a run that could not be regraded now
      // (another writer, a live eval) says so, with the command that regrades it later
      for (const miss of out.not_regraded || [])
        flash += ` Not re-graded: run ${miss.run} (${miss.error}); run \`posttrain regrade ${miss.run}\` later.`;
      await render();
    } catch (err) { result.textContent = `Error: ${err.message}`; }
  }
  const transcript = Array.isArray(s.transcript) && s.transcript.length > s.messages.length ? s.transcript : null;
  show(
    h("h1", {}, `Item ${itemId}`, h("span", {class: "muted"}, " · "), modelName(s.run), h("span", {class: "muted"}, ` [${s.run.variant}] · `),
      h("a", {href: `#/run/${enc(runId)}`}, s.run.id), h("span", {class: "muted"}, " · "), h("a", {href: `#/matrix/${enc(s.run.eval)}?q=${enc(itemId)}`}, "in the matrix")),
    h("p", {}, h("span", {class: statusLabel(s)}, statusLabel(s)), " score ", h("strong", {id: "sample-score"}, fmt(s.value)),
      s.reason ? h("span", {class: "muted"}, ` — ${s.reason}`) : "", " · ", s.tags.map(t => h("span", {class: "pill"}, t)),
      ` · ${s.input_tokens}→${s.output_tokens} tokens`, s.latency_s === null ? "" : ` · ${secs(s.latency_s)}`, s.cost_usd ? ` · ${usd(s.cost_usd)}` : ""),
    h("h2", {}, "Prompt"), s.messages.map(m => messageView(m)),
    transcript ? transcriptView(transcript, s.meta || {}, s.messages.length) : null,
    h("h2", {}, transcript ? "Final answer" : "Answer"),
    messageView({role: "assistant", content: s.error ? `[request failed] ${s.error}` : s.output, tool_calls: transcript ? [] : s.tool_calls}),
    h("h2", {}, "Grades"), h("div", {id: "grades"}, Object.values(s.grades).map(gradeView)),
    h("h2", {}, "Review"),
    h("div", {class: "review", id: "review"},
      h("div", {class: "toolbar"}, verdicts.map(v => h("label", {}, h("input", {type: "radio", name: "verdict", value: v}), ` ${v} `))),
      s.reference_fields.length ? h("div", {}, h("label", {}, edit, " edit the reference "), fieldSelect, textarea)
        : h("p", {class: "muted"}, "No editable reference field for this eval's graders."),
      h("div", {class: "toolbar"}, note, h("button", {id: "review-submit", onclick: submit}, "Save review")), result,
      s.reviews.length ? h("ul", {id: "review-history"}, s.reviews.map(r => h("li", {}, `${r.verdict}${r.note ? ": " + r.note : ""}${r.new_value !== "null" ? " · " + r.old_value + " → " + r.new_value : ""}`))) : null),
    h("h2", {}, "Item data"), h("pre", {}, JSON.stringify(s.item, null, 2)));
}

// ---- side by side ---------------------------------------------------------------------------
function diffView(ops) {
  return h("div", {class: "answer", dir: "auto"}, ops.map(([op, text]) => op === "=" ? sameText(text) : h(op === "-" ? "del" : "ins", {}, text)));
}

// a long stretch both answers share is folded (its start and end kept), so the changes stand out
function sameText(text, limit = 600, keep = 200) {
  if (text.length <= limit) return text;
  // cut between words where there is a space near the cut
  const head = Math.max(text.lastIndexOf(" ", keep), keep / 2) + 1;
  const space = text.indexOf(" ", text.length - keep);
  const tail = space === -1 || space > text.length - keep / 2 ? text.length - keep : space + 1;
  return [text.slice(0, head), h("details", {class: "fold same"},
    h("summary", {}, `… ${tail - head} characters the same in A and B (show)`), text.slice(head, tail)), text.slice(tail)];
}

async function pageCompare(a, b, params) {
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const c = await api(`api/compare?a=${enc(a)}&b=${enc(b)}&offset=${offset}`);
  const page = to => { location.hash = `#/compare/${enc(a)}/${enc(b)}?offset=${to}`; };
  const o = c.paired.overall;
  const labelA = `${c.a.short} [${c.a.variant}]`, labelB = `${c.b.short} [${c.b.variant}]`;
  show(h("h1", {}, "Side by side"),
    h("p", {}, h("strong", {}, "A: "), modelName(c.a), ` [${c.a.variant}] ${fmt(c.a_score.mean)} · `,
      h("strong", {}, "B: "), modelName(c.b), ` [${c.b.variant}] ${fmt(c.b_score.mean)} · `,
      h("a", {href: `#/arena/${enc(a)}/${enc(b)}`}, "blind vote on these")),
    o.diff === null ? null : h("p", {id: "paired-overall"}, `B − A = ${o.diff >= 0 ? "+" : ""}${fmt(o.diff)} over ${o.n} paired items, `,
      o.ci_low === null ? "" : `95% CI [${fmt(o.ci_low)}, ${fmt(o.ci_high)}], `, `p = ${o.p_value === null ? "–" : Number(o.p_value).toPrecision(2)} (${o.test})`,
      h("strong", {class: o.significant ? (o.diff > 0 ? "pass" : "fail") : "muted"}, o.significant ? " significant" : " not significant")),
    c.paired.warnings.map(w => h("p", {class: "unscored"}, w)),
    h("div", {class: "charts"}, pairedChart(c.paired.groups, "A", "B")),
    h("p", {class: "muted small"}, `A = ${labelA}, B = ${labelB}`),
    h("div", {class: "toolbar"},
      h("span", {class: "muted", id: "compare-count"}, c.total ? `answer pairs ${offset + 1}–${offset + c.rows.length} of ${c.total}` : "no answer both runs hold"),
      h("button", {class: "secondary", id: "compare-prev", disabled: offset === 0, onclick: () => page(Math.max(0, offset - c.limit))}, "← previous"),
      h("button", {class: "secondary", id: "compare-next", disabled: offset + c.rows.length >= c.total, onclick: () => page(offset + c.limit)}, "next →")),
    h("table", {id: "compare"}, h("thead", {}, h("tr", {}, ["item", "A", "B", "diff (A → B)"].map(t => h("th", {}, t)))),
      h("tbody", {}, c.rows.map(r => h("tr", {},
        h("td", {}, r.item_id), h("td", {class: r.a.status}, fmt(r.a.value)), h("td", {class: r.b.status}, fmt(r.b.value)), h("td", {}, diffView(r.diff)))))));
}

// ---- blind votes ----------------------------------------------------------------------------
function progressView(p) {
  const g = p.grade_agreement, v = p.voter_agreement;
  return h("div", {class: "progress", id: "arena-progress"},
    h("div", {class: "bar", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": p.votable, "aria-valuenow": p.voted},
      h("span", {style: `width:${p.votable ? (100 * p.voted) / p.votable : 0}%`})),  // nothing to vote on is not done
    h("p", {class: "muted"}, `${p.voted} of ${p.votable} answer pairs voted`,
      p.identical ? ` · ${p.identical} pair(s) with identical answers skipped` : "",
      p.changed ? ` · ${p.changed} pair(s) skipped: the item differs between the two runs` : "",
      ` · votes A ${p.wins.a}, B ${p.wins.b}, tie ${p.wins.tie}`,
      ` · agreement with the grades: ${g.n ? `${g.agree}/${g.n} (${pct(g.agree, g.n)})` : "no vote on an item the grades split"}`,
      v.n ? ` · between voters: ${v.agree}/${v.n} (${pct(v.agree, v.n)})` : ""));
}

async function pageArena(a, b) {
  const pair = await api(`api/arena/next?a=${enc(a)}&b=${enc(b)}`);
  if (pair.done) {
    show(h("h1", {}, "Blind vote"), progressView(pair.progress),
      h("p", {id: "arena-done"}, pair.progress.votable
        ? `All ${pair.progress.votable} answer pairs that differ are voted on.`
        : `Nothing to vote on: the two runs gave the same answer to each of their ${pair.progress.identical} shared items.`),
      h("a", {href: "#/"}, "back to runs"));
    return;
  }
  const voter = h("input", {id: "voter", "aria-label": "your name", size: 14, placeholder: "your name (optional)", value: localStorage.getItem("posttrain-voter") || "",
    onchange: e => localStorage.setItem("posttrain-voter", e.target.value.trim())});
  const reveal = h("div", {class: "reveal", id: "reveal", role: "status"});
  const next = h("button", {id: "btn-next", class: "secondary", hidden: true, onclick: () => render()}, "Next pair");
  const vote = async (choice) => {
    if (buttons[0].disabled) return;
    buttons.forEach(btn => (btn.disabled = true));
    const body = {pair: pair.pair, choice};
    if (voter.value.trim()) body.voter = voter.value.trim();
    const out = await api("api/arena/vote", body);
    reveal.textContent = `Left was ${out.reveal.left}; right was ${out.reveal.right}.`;
    next.hidden = false;
    next.focus();
  };
  const buttons = ["left", "tie", "right"].map(choice => h("button", {id: `vote-${choice}`, onclick: () => vote(choice)},
    choice === "tie" ? "Tie (t)" : choice === "left" ? "Left is better (←)" : "Right is better (→)"));
  const arenaKeys = (e) => {
    if (e.target.matches("input, textarea")) return;
    if (!next.hidden && (e.key === "Enter" || e.key === "n")) { e.preventDefault(); render(); }
    else if (e.key === "ArrowLeft") vote("left");
    else if (e.key === "ArrowRight") vote("right");
    else if (e.key === "t") vote("tie");
  };
  const answer = (side) => h("div", {}, h("h2", {}, side === "left" ? "Answer 1 (left)" : "Answer 2 (right)"),
    h("div", {class: "answer", id: `answer-${side}`, dir: "auto"}, pair[side].output,
      (pair[side].tool_calls || []).map(c => h("pre", {}, `${c.function?.name}(${c.function?.arguments})`))));
  show(h("h1", {}, "Blind vote"), progressView(pair.progress),
    h("p", {class: "muted"}, "Model names are shown after you vote. ", voter),
    h("h2", {}, "Conversation"), pair.messages.map(m => messageView(m)),
    h("div", {class: "side"}, answer("left"), answer("right")),
    h("div", {class: "toolbar"}, buttons, next), reveal);
  keyHandler = arenaKeys;
}

// ---- live runs and steering ----------------------------------------------------------------
// Pushed by the server (server-sent events from the store the runner writes); one stream open
// at a time, closed when the page changes.
let liveSource = null;
function openStream(query, handlers) {
  if (liveSource) liveSource.close();
  liveSource = new EventSource(`api/live/stream?${query}`);
  for (const [name, handler] of Object.entries(handlers)) liveSource.addEventListener(name, e => handler(JSON.parse(e.data)));
  return liveSource;
}

function liveTable(runs) {
  return h("table", {id: "live-runs"}, h("thead", {}, h("tr", {}, ["run", "eval", "model", "status", "progress", "agentic samples in flight"].map(t => h("th", {}, t)))),
    h("tbody", {}, runs.map(r => h("tr", {"data-run": r.id, "data-status": r.status},
      h("td", {}, h("a", {href: `#/run/${enc(r.id)}`}, r.id)), h("td", {}, r.eval), h("td", {}, modelName(r), r.variant !== "default" ? ` [${r.variant}]` : ""),
      h("td", {class: r.status === "running" && r.runner !== "gone" ? "running" : "", title: r.runner === "gone" ? "its runner process stopped before the run finished: run the same command again to resume it" : ""}, r.runner === "gone" ? "stopped (runner gone)" : r.status),
      h("td", {class: "progress"}, h("progress", {max: r.total || 1, value: r.done}), ` ${r.done}/${r.total}`, r.errors ? h("span", {class: "fail"}, ` · ${r.errors} error${r.errors === 1 ? "" : "s"}`) : null,
        r.steered ? h("span", {class: "steered", title: "answers a reviewer corrected: they count in the score like the others"}, ` · ${r.steered} steered`) : null),
      h("td", {}, r.in_flight.map(s => h("a", {class: `in-flight${s.paused ? " paused" : ""}`, href: `#/live/${enc(r.id)}/${enc(s.item_id)}/${s.epoch}`},
        `${s.item_id}${s.epoch ? "#" + s.epoch : ""} · ${s.steps} steps${s.paused ? " · paused" : ""}`)))))));
}

async function pageLive() {
  const runs = await api("api/live");
  const holder = h("div", {id: "live-holder"}, liveTable(runs));
  show(h("h1", {}, "Live runs"), h("p", {class: "muted"}, "Progress per run and the agentic samples being answered, as they happen. Open one to follow its trajectory, pause it and correct it."), holder);
  openStream("", {progress: data => holder.replaceChildren(liveTable(data))});
}

async function pageTrajectory(runId, itemId, epoch) {
  const ref = `api/live/${enc(runId)}/${enc(itemId)}?epoch=${epoch}`;
  let t = await api(ref);
  const messages = new Map(t.messages.map((m, i) => [i, m]));
  const stepsList = h("ol", {id: "steps"});
  const messagesBox = h("div", {id: "traj-messages", class: "turns"});
  const state = h("p", {id: "traj-state", role: "status"});
  const form = h("div", {id: "steer-form", hidden: true});
  const result = h("p", {id: "steer-result", role: "status"});
  const pause = h("button", {id: "btn-pause", onclick: async () => {
    try { await api("api/steer/pause", {run: t.run, item_id: itemId, epoch: Number(epoch)}); t.pause_requested = true; refresh(); }
    catch (err) { result.textContent = err.message; }
  }}, "Pause");
  const pauseNote = h("p", {id: "pause-note", class: "muted", hidden: true});
  function addStep(step) {
    // a resumed run plays the episode again: the earlier attempt's steps stay, greyed
    if (step.kind === "attempt") stepsList.querySelectorAll("li").forEach(li => li.classList.add("earlier"));
    stepsList.append(h("li", {"data-kind": step.kind, class: step.kind + (step.current === false ? " earlier" : "")}, h("span", {class: "muted"}, step.kind === "attempt" ? "" : `turn ${step.turn} `), step.summary));
    if (step.kind === "message") { if (step.position === 0) messages.clear(); messages.set(step.position, step.message); t.cannot_pause = null; }
    if (step.kind === "paused") { t.paused = true; t.pause_requested = false; }
    if (step.kind === "resumed") { t.paused = false; }
  }
  function drawMessages() {
    messagesBox.replaceChildren(...[...messages.keys()].sort((a, b) => a - b).map(i => {
      const view = messageView(messages.get(i)); view.dataset.position = i; return view; }));
  }
  function drawForm() {
    const ordered = [...messages.keys()].sort((a, b) => a - b).map(i => [i, messages.get(i)]);
    const lastAssistant = Math.max(-1, ...ordered.filter(([, m]) => m.role === "assistant").map(([i]) => i));
    const editable = ordered.filter(([i, m]) => i > lastAssistant && m.role === "tool");
    const edits = editable.map(([i, m]) => {
      const area = h("textarea", {id: `edit-${i}`, "data-position": i, rows: 3, "aria-label": `tool result ${i}`});
      area.value = contentText(m.content);
      return h("label", {class: "edit"}, `Next tool result (${m.tool_call_id || i}), as the model will read it:`, area);
    });
    const message = h("textarea", {id: "steer-message", rows: 3, placeholder: "a message to the agent (optional)", "aria-label": "message"});
    const go = h("button", {id: "btn-continue", onclick: async () => {
      const body = {run: t.run, item_id: itemId, epoch: Number(epoch), reviewer: "web"};
      const changed = {};
      for (const [i, m] of editable) { const v = form.querySelector(`#edit-${i}`).value; if (v !== contentText(m.content)) changed[i] = v; }
      if (Object.keys(changed).length) body.tool_results = changed;
      if (message.value.trim()) body.message = message.value;
      try { const r = await api("api/steer/resume", body); result.textContent = r.message; form.hidden = true; }
      catch (err) { result.textContent = err.message; }
    }}, "Continue");
    form.replaceChildren(h("h2", {}, "Correct, then continue"), ...(edits.length ? edits : [h("p", {class: "muted"}, "No tool result is waiting for the model.")]), h("label", {class: "edit"}, "Add a message:", message), h("div", {class: "toolbar"}, go));
  }
  function refresh() {
    const gone = !t.finished && t.runner === "gone";
    state.textContent = t.finished ? "finished" : gone ? "the run is not running: its runner stopped before the run finished (run the same command again to resume it)" : t.paused ? "paused: the runner waits for you" : t.pause_requested ? "pause requested: it stops before the next turn" : t.run_status === "running" ? "running" : t.run_status;
    state.dataset.state = t.finished ? "finished" : gone ? "stopped" : t.paused ? "paused" : t.pause_requested ? "requested" : "running";
    pause.disabled = t.finished || gone || t.paused || t.pause_requested || t.run_status !== "running" || Boolean(t.cannot_pause);
    // no trajectory (a plain eval, a custom solver that reports no steps): no pause, and why
    pauseNote.textContent = t.cannot_pause && !t.finished && !gone ? t.cannot_pause : "";
    pauseNote.hidden = !pauseNote.textContent;
    const wasHidden = form.hidden;
    form.hidden = !t.paused || t.finished || gone;
    if (!form.hidden && wasHidden) drawForm();
  }
  t.steps.forEach(addStep);
  t.paused = t.paused; drawMessages();
  const done = h("p", {id: "traj-done"});
  show(h("h1", {}, `Trajectory: ${itemId}`), h("p", {class: "muted"}, `${t.eval} · ${t.model} · run `, h("a", {href: `#/run/${enc(t.run)}`}, t.run), ` · epoch ${epoch}`),
    state, h("div", {class: "toolbar"}, pause), pauseNote, result, form, done,
    h("div", {class: "side"}, h("section", {}, h("h2", {}, "Steps"), stepsList), h("section", {}, h("h2", {}, "Messages"), messagesBox)));
  function finished() {
    done.replaceChildren("Finished and graded: ", h("a", {id: "open-sample", href: `#/sample/${enc(t.run)}/${enc(itemId)}/${epoch}`}, "open the stored sample"));
  }
  refresh();
  if (t.finished) { finished(); return; }
  openStream(`run=${enc(t.run)}&item=${enc(itemId)}&epoch=${epoch}&after=${t.last_step}`, {
    step: step => { addStep(step); drawMessages(); refresh(); if (!form.hidden && step.kind === "paused") drawForm(); },
    progress: async runs => {
      const run = runs.find(r => r.id === t.run);
      const flying = run && run.status === "running" && run.in_flight.some(s => s.item_id === itemId && s.epoch === Number(epoch));
      if (flying || t.finished) return;
      const now = await api(ref);
      if (now.finished) { t.finished = true; refresh(); finished(); if (liveSource) liveSource.close(); }
    },
  });
}

async function render() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(query || "");
  statusEl.textContent = "";
  if (liveSource) { liveSource.close(); liveSource = null; }
  try {
    if (parts[0] === "live" && parts[1]) await pageTrajectory(parts[1], parts[2], parts[3] || "0");
    else if (parts[0] === "live") await pageLive();
    else if (parts[0] === "run") await pageRun(parts[1], params);
    else if (parts[0] === "matrix") await pageMatrix(parts[1], params);
    else if (parts[0] === "sample") await pageSample(parts[1], parts[2], parts[3] || "0");
    else if (parts[0] === "compare") await pageCompare(parts[1], parts[2], params);
    else if (parts[0] === "arena") await pageArena(parts[1], parts[2]);
    else if (parts[0] === "training" && parts[1]) await pageTrainingJob(parts[1]);
    else if (parts[0] === "training") await pageTraining();
    else await pageRuns();
    document.body.setAttribute("data-page", parts[0] || "runs");
  } catch (err) {
    show(h("p", {class: "error", id: "error"}, `Error: ${err.message}`));
  }
}

// a store opened for reading (a read-only file or folder): say so once, next to the status,
// before anyone votes or reviews (the server refuses those with a 403)
async function storeBanner() {
  try {
    const store = await api("api/store");
    if (store.read_only) statusEl.before(h("span", {id: "read-only", class: "pill readonly",
      title: "posttrain view opened this store for reading: its file or folder is not writable here"},
      "read-only store: votes, reviews and corrections are off"));
  } catch (err) { /* an older server: no banner */ }
}

document.addEventListener("keydown", e => { if (keyHandler) keyHandler(e); });
window.addEventListener("hashchange", render);
storeBanner();
render();
