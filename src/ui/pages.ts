/**
 * The web UI's pages, rendered on the server (hono/html escapes every value put in): the trace
 * list, one trace as a waterfall, the service map, and the token form. No script runs in the
 * browser; the pages are plain HTML and CSS, so they work wherever the worker runs.
 */
import { html, raw } from "hono/html";
import type { LinkedSpan } from "../../contract/espan.ts";
import type { TraceSummary } from "../store/trace-summary.ts";
import type { ServiceEdge } from "./service-map.ts";
import { isError } from "./service-map.ts";
import type { Waterfall } from "./waterfall.ts";

type Html = ReturnType<typeof html>;

const STYLE = `
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#1d2433;background:#f6f7f9}
header{background:#1d2433;color:#fff;padding:10px 20px;display:flex;gap:24px;align-items:baseline}
header a{color:#fff;text-decoration:none}header .brand{font-weight:700;font-size:16px}
main{padding:16px 20px}h1{font-size:18px;margin:0 0 12px}
table{border-collapse:collapse;background:#fff;width:100%}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #e3e6eb}
th{background:#eef0f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
code,.mono{font-family:ui-monospace,monospace;font-size:12px}
form.filter{margin:0 0 12px;display:flex;gap:8px;align-items:center}
input{padding:4px 6px}button{padding:4px 12px}
.wf details{border-bottom:1px solid #e3e6eb;background:#fff}.wf summary{display:grid;grid-template-columns:38% 1fr 80px;align-items:center;cursor:pointer;list-style:none;padding:3px 8px}
.wf summary::-webkit-details-marker{display:none}.wf .name{white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.wf .lane{position:relative;height:14px;background:#f0f2f5}.wf .bar{position:absolute;top:2px;height:10px;min-width:2px;border-radius:2px}
.wf .dur{text-align:right;font-variant-numeric:tabular-nums;color:#556}.kind{font-size:10px;border-radius:3px;padding:0 4px;margin-right:4px;color:#fff}
.SERVER{background:#2f6fbd}.CLIENT{background:#7a55b5}.err{color:#c0392b;font-weight:600}.detached{color:#b07a00}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:6px 8px 10px 40px;font-size:12px}dt{color:#556}dd{margin:0;font-family:ui-monospace,monospace;word-break:break-all}
.muted{color:#667}.svg{background:#fff;border:1px solid #e3e6eb;margin-bottom:12px}
`;

/** Twelve colours far apart (Tableau's palette, extended): services on one page get them in order. */
const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#8c564b"];

/** A colour for each service, in the order given (the page's order of first appearance). */
export function serviceColours(services: readonly string[]): Map<string, string> {
  return new Map(services.map((s, i) => [s, PALETTE[i % PALETTE.length]]));
}

export function layout(title: string, body: Html): Html {
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title} · espan</title><style>${raw(STYLE)}</style></head>
<body><header><a class="brand" href="/ui">espan</a><a href="/ui">Traces</a><a href="/ui/services">Service map</a></header>
<main>${body}</main></body></html>`;
}

const time = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");
const msOf = (ns: number | bigint) => (Number(ns) / 1e6).toFixed(Number(ns) < 1e7 ? 2 : 1);

export function traceListPage(traces: TraceSummary[], filter: { service?: string; limit: number }): Html {
  const rows = traces.map((t) => html`<tr>
<td class="mono">${time(t.start_ms)}</td><td><a href="/ui/traces/${t.trace_id}" class="mono">${t.trace_id}</a></td>
<td>${t.root_service}</td><td>${t.root_operation}</td><td class="num">${t.span_count}</td><td>${t.services.join(", ")}</td></tr>`);
  return layout("Traces", html`<h1>Traces</h1>
<form class="filter" method="get" action="/ui"><label>service <input name="service" value="${filter.service ?? ""}"></label>
<label>limit <input name="limit" type="number" min="1" max="1000" value="${filter.limit}"></label><button>Show</button></form>
${traces.length === 0
    ? html`<p class="muted">No traces stored yet${filter.service ? html` for service <b>${filter.service}</b>` : ""}. A trace appears once its root is decided (the window, or settle after a client-side root) and sampled in.</p>`
    : html`<table><thead><tr><th>start (UTC)</th><th>trace id</th><th>root service</th><th>root operation</th><th>spans</th><th>services</th></tr></thead>
<tbody>${rows}</tbody></table>`}`);
}

function spanName(s: LinkedSpan): string {
  return s.operation || [s.http_method, s.http_route].filter(Boolean).join(" ") || s.l7_proto;
}

function spanFields(s: LinkedSpan): Html {
  const entries = Object.entries(s).filter(([, v]) => v !== undefined && v !== null && v !== "");
  return html`<dl>${entries.map(([k, v]) => html`<dt>${k}</dt><dd>${typeof v === "object" ? JSON.stringify(v) : String(v)}</dd>`)}</dl>`;
}

export function tracePage(traceId: string, w: Waterfall): Html {
  const colour = serviceColours(w.services);
  const rows = w.rows.map((r) => {
    const s = r.span;
    const kind = s.kind === "entry" ? "SERVER" : "CLIENT";
    return html`<details id="span-${s.span_id}"><summary>
<span class="name" style="padding-left:${r.depth * 16}px" title="${s.service} · ${spanName(s)}"><span class="kind ${kind}">${kind}</span><b>${s.service}</b> ${spanName(s)}${
      isError(s) ? html` <span class="err">error</span>` : ""}${r.detached ? html` <span class="detached" title="its parent ${s.parent_id} is not in this trace">↑ ${s.parent_id}</span>` : ""}</span>
<span class="lane"><span class="bar" style="left:${r.offsetPct.toFixed(3)}%;width:${r.widthPct.toFixed(3)}%;background:${colour.get(s.service)}"></span></span>
<span class="dur">${msOf(s.duration_ns)} ms</span></summary>${spanFields(s)}</details>`;
  });
  return layout(`Trace ${traceId}`, html`<h1>Trace <span class="mono">${traceId}</span></h1>
<p class="muted">${w.rows.length} spans · ${w.services.length} services (${w.services.join(", ")}) · ${msOf(w.endNs - w.startNs)} ms ·
started ${time(Number(w.startNs / 1_000_000n))} UTC · <a href="/api/traces/${traceId}">JSON</a></p>
<div class="wf">${rows}</div>`);
}

/** Nodes on an ellipse, an arrow per edge (thicker for more calls); the table below has the numbers. */
function mapSvg(edges: ServiceEdge[]): Html {
  const nodes = [...new Set(edges.flatMap((e) => [e.caller, e.callee]))];
  const untraced = new Set(edges.filter((e) => e.untraced).map((e) => e.callee));
  const colour = serviceColours(nodes.filter((n) => !untraced.has(n)));
  const W = 980, H = 560, RX = W / 2 - 170, RY = H / 2 - 50;
  const at = new Map(nodes.map((n, i) => {
    const a = (2 * Math.PI * i) / nodes.length - Math.PI / 2;
    return [n, { x: W / 2 + RX * Math.cos(a), y: H / 2 + RY * Math.sin(a) }];
  }));
  const most = Math.max(1, ...edges.map((e) => e.calls));
  const lines = edges.map((e) => {
    const a = at.get(e.caller)!, b = at.get(e.callee)!;
    if (e.caller === e.callee) return html``;
    // Stop short of the callee's dot so the arrow head shows.
    const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
    const x2 = b.x - (dx / len) * 12, y2 = b.y - (dy / len) * 12;
    return html`<line x1="${a.x.toFixed(1)}" y1="${a.y.toFixed(1)}" x2="${x2.toFixed(1)}" y2="${y2.toFixed(1)}" stroke="${e.errors ? "#c0392b" : "#8a93a6"}" stroke-opacity="0.8" stroke-width="${(1 + (3 * e.calls) / most).toFixed(1)}" marker-end="url(#arrow)"><title>${e.caller} → ${e.callee}: ${e.calls} calls</title></line>`;
  });
  const dots = nodes.map((n) => {
    const p = at.get(n)!;
    // Labels outside the ellipse: to the left of nodes on the left half, to the right otherwise.
    const left = p.x < W / 2 - 1;
    const lx = p.x + (left ? -14 : 14);
    return html`<circle cx="${p.x.toFixed(1)}" cy="${p.y.toFixed(1)}" r="9" fill="${colour.get(n) ?? "#fff"}" stroke="#1d2433" stroke-dasharray="${untraced.has(n) ? "3 2" : "none"}"/><text x="${lx.toFixed(1)}" y="${(p.y + 4).toFixed(1)}" text-anchor="${left ? "end" : "start"}" font-size="12">${n}</text>`;
  });
  return html`<svg class="svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="service map">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#8a93a6"/></marker></defs>
${lines}${dots}</svg>`;
}

export function serviceMapPage(edges: ServiceEdge[], traceCount: number): Html {
  const rows = edges.map((e) => html`<tr><td>${e.caller}</td><td>${e.callee}${e.untraced ? html` <span class="muted">(not traced)</span>` : ""}</td>
<td class="num">${e.calls}</td><td class="num ${e.errors ? "err" : ""}">${e.errors}</td><td class="num">${e.meanMs.toFixed(2)}</td></tr>`);
  return layout("Service map", html`<h1>Service map</h1>
<p class="muted">Calls in the newest ${traceCount} stored traces (<a href="/ui/services?traces=200">200</a>, <a href="/ui/services?traces=1000">1000</a>). A callee no traced process answered for is shown by its address.</p>
${edges.length === 0 ? html`<p class="muted">No calls yet.</p>` : html`${mapSvg(edges)}
<table><thead><tr><th>caller</th><th>callee</th><th>calls</th><th>errors</th><th>mean ms</th></tr></thead><tbody>${rows}</tbody></table>`}`);
}

export function loginPage(error?: string): Html {
  return layout("Sign in", html`<h1>Sign in</h1>
<p>This ingest has a token (<code>ESPAN_TOKEN</code>). Enter it to see its traces; it is kept in a cookie for this browser.</p>
${error ? html`<p class="err">${error}</p>` : ""}
<form method="post" action="/ui/login"><input name="token" type="password" autocomplete="current-password" autofocus> <button>Sign in</button></form>`);
}
