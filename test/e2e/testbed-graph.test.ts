// End to end on the multi-host testbed (testbed/): three hosts as network namespaces, one agent
// per host, a kernel DNAT service VIP, threaded Python services, a Node service, nginx, and a
// Node service instrumented with the OpenTelemetry SDK; the ingest on `workerd serve` exporting
// OTLP/protobuf to a local receiver that decodes it with the official definitions.
//
// One round of traffic (testbed/workload.ts: chain, fan-out, keep-alive and not, concurrent,
// traceparent, nginx, the SDK service, a cron-like client), then:
//  - every span the agents captured is exported exactly once, field by field;
//  - each client request gives exactly one trace holding exactly the edges of the known call
//    graph (nginx under concurrency without app context: documented below, counted);
//  - edges through the NAT VIP are linked although client and server saw different addresses;
//  - through the SDK service, the trace id is the SDK's and eBPF spans nest under its span ids;
//  - service names come from the environment, host names from each host's UTS namespace.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import { edgesOf, fromOtlp, groupBy, requestOf, type TSpan } from "../../testbed/analyze.ts";
import { runWorkload, startTestbed, waitLinked, type Testbed } from "../../testbed/testbed.ts";
import { expectedEdges, HOST_NAMES, HOST_OF, HOSTS, NET, SERVICES, type HostName } from "../../testbed/topology.ts";
import { CRON_PLAN, defaultPlan, type ClientRequest } from "../../testbed/workload.ts";
import { startReceiver, type ReceivedSpan, type Receiver } from "./ingest/otlp-receiver.ts";

let receiver: Receiver;
let tb: Testbed;
let requests: ClientRequest[];
/** Every eSpan the agents produced, with the host whose agent produced it. */
let raw: (ESpan & { agent: HostName })[];
let otlp: ReceivedSpan[];
let spans: TSpan[];
let byId: Map<string, TSpan>;
let byRequest: Map<string, TSpan[]>;

beforeAll(async () => {
  receiver = await startReceiver();
  tb = await startTestbed({
    ingest: { shards: 4, samplingRate: 1, useAppTraceId: true, window: "5s", settle: "3s", otlpEndpoint: receiver.url, otlpProtocol: "http/protobuf" },
  });
  requests = await runWorkload(tb, defaultPlan());
  await tb.waitShipped();
  raw = HOST_NAMES.flatMap((h) => tb.agentSpans(h).map((s) => ({ ...s, agent: h })));
  const m = await waitLinked(tb.ingestUrl, raw.length, 60_000);
  expect(m.espan_spans_exported_total).toBe(raw.length);
  otlp = receiver.spans;
  spans = otlp.map(fromOtlp);
  byId = new Map(spans.map((s) => [s.spanId, s]));
  byRequest = groupBy(spans, (s) => requestOf(s.path)?.id ?? "?");
}, 240_000);

afterAll(async () => {
  await tb?.stop();
  await receiver?.close();
});

const rawOf = (id: string) => raw.filter((s) => requestOf(s.http_route ?? "")?.id === id);

describe("testbed: three hosts, one agent each, one ingest", () => {
  it("answered every client request", () => {
    const plan = defaultPlan();
    expect(requests.length).toBe(plan.reduce((n, p) => n + p.ids.length, 0) + CRON_PLAN.count);
    expect(requests.filter((r) => r.status !== 200)).toEqual([]);
  });

  it("each agent selected only its host's processes; host names from the UTS namespace, service names from the environment", () => {
    const expectedService: Record<string, { process: string; host: HostName }> = {
      web: { process: "python3", host: "h1" }, edge: { process: "nginx", host: "h1" },
      api: { process: "python3", host: "h2" }, pricing: { process: "python3", host: "h2" }, loadgen: { process: "python3", host: "h2" },
      inventory: { process: "node", host: "h3" }, checkout: { process: "node", host: "h3" }, cron: { process: "curl", host: "h3" },
    };
    const seen = new Set<string>();
    for (const s of raw) {
      const want = expectedService[s.service];
      expect(want, `span of an unexpected service ${s.service} (${s.process_name}, pid ${s.pid})`).toBeDefined();
      expect(s.agent, `${s.service} reported by the wrong agent`).toBe(want.host);
      expect(s.host).toBe(want.host); // os.hostname() in the agent's UTS namespace
      expect(s.process_name).toBe(want.process);
      expect(requestOf(s.http_route ?? ""), `a span outside the workload: ${s.operation}`).toBeDefined();
      seen.add(s.service);
    }
    // DK_BPFTRACE_SERVICE (web, edge, pricing over its DD_SERVICE, loadgen, inventory, cron),
    // DD_SERVICE (api), OTEL_SERVICE_NAME (checkout).
    expect([...seen].sort()).toEqual(Object.keys(expectedService).sort());
    // Addresses: each span's local address is its host's.
    for (const s of raw) expect(s.src_ip).toBe(HOSTS[s.agent].addr);
    for (const h of HOST_NAMES) expect(tb.agentStatus(h).capture_drops).toBe(0);
  });

  it("exports every captured span exactly once over OTLP/protobuf, field by field", () => {
    expect(receiver.requests.length).toBeGreaterThan(0);
    expect(receiver.requests.every((r) => r.contentType === "application/x-protobuf" && r.status === 200)).toBe(true);
    expect(otlp.length).toBe(raw.length);
    expect(byId.size).toBe(raw.length); // no duplicates
    const mapped = new Set(["span_id", "kind", "req_seq", "resp_seq", "thread_trace_id", "start_ns", "duration_ns", "host", "pid", "tid",
      "process_name", "service", "src_ip", "dst_ip", "src_port", "dst_port", "l7_proto", "operation", "http_method", "http_route",
      "http_status_code", "http_version", "status", "agent"]);
    const asAttr = new Set(["bytes_read", "bytes_written", "app_trace_id", "app_parent_id", "app_sampled"]);
    const byOtlpId = new Map(otlp.map((o) => [o.spanId, o]));
    for (const s of raw) {
      const o = byOtlpId.get(s.span_id)!;
      expect(o, `span ${s.span_id} not exported`).toBeDefined();
      const entry = s.kind === "entry";
      expect(o.traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(o.parentSpanId).toMatch(/^([0-9a-f]{16})?$/);
      expect(o.name).toBe(s.operation);
      expect(o.kind).toBe(entry ? 2 : 3); // SPAN_KIND_SERVER : SPAN_KIND_CLIENT
      expect(o.startTimeUnixNano).toBe(s.start_ns);
      expect(o.endTimeUnixNano).toBe(String(BigInt(s.start_ns) + BigInt(s.duration_ns)));
      expect(o.status).toBe(0); // UNSET: every answer was a 200
      expect(o.resource).toEqual({
        "service.name": s.service, "host.name": s.host, "process.pid": s.pid, "process.executable.name": s.process_name,
        "telemetry.sdk.name": "espan", "telemetry.sdk.language": "ebpf",
      });
      const want: Record<string, unknown> = {
        "network.transport": "tcp", "network.protocol.name": "http", "network.protocol.version": s.http_version,
        "network.local.address": s.src_ip, "network.local.port": s.src_port,
        "network.peer.address": s.dst_ip, "network.peer.port": s.dst_port,
        "server.address": entry ? s.src_ip : s.dst_ip, "server.port": entry ? s.src_port : s.dst_port,
        "thread.id": s.tid, "espan.req_seq": s.req_seq, "espan.resp_seq": s.resp_seq,
        "http.request.method": s.http_method, "url.path": s.http_route, "http.response.status_code": s.http_status_code,
      };
      if (entry) Object.assign(want, { "client.address": s.dst_ip, "client.port": s.dst_port, "http.route": s.http_route });
      if (s.thread_trace_id) want["espan.thread_trace_id"] = s.thread_trace_id;
      // The agent's own notes (e.g. espan.response_end = "unknown": the last response on a
      // keep-alive connection written in several syscalls, whose end only the next request or
      // the close would show; exported after the idle flush) are attributes as they are.
      if (s.attributes) Object.assign(want, s.attributes);
      for (const [k, v] of Object.entries(s)) {
        if (mapped.has(k) || k === "attributes" || v === undefined || v === null) continue;
        expect(asAttr.has(k), `raw field ${k} the test does not know`).toBe(true);
        want[`espan.${k}`] = v;
      }
      expect(o.attributes, `attributes of ${s.service} ${s.kind} ${s.operation}`).toEqual(want);
    }
  });

  it("gives each client request exactly one trace with every edge of the call graph and no false edge", () => {
    const sdk = sdkSpansByRequest();
    const traceOwners = new Map<string, Set<string>>();
    let nginxSplit = 0;
    for (const r of requests) {
      const mine = byRequest.get(r.id) ?? [];
      const nginxLinked = r.flow === "ng" && !r.traceparent ? rawOf(r.id).some((s) => s.service === "edge" && s.kind === "exit" && s.thread_trace_id) : undefined;
      const external = new Map<string, string>();
      if (r.parent_id) external.set(r.parent_id, "app");
      const sd = sdk.get(r.id);
      if (sd) external.set(sd.client.spanId, "sdk-client").set(sd.server.spanId, "sdk-server");
      expect(edgesOf(mine, byId, external), `request ${r.id}`).toEqual(
        expectedEdges(r.flow, { client: r.client, traceparent: r.traceparent, nginxLinked }).sort(),
      );
      const traces = new Set(mine.map((s) => s.traceId));
      // nginx's upstream call made while several requests were open, with no app context to tell
      // them apart, is left unlinked by the agent: its request has two traces, never a wrong edge.
      expect(traces.size, `traces of request ${r.id}`).toBe(nginxLinked === false ? 2 : 1);
      if (nginxLinked === false) nginxSplit++;
      for (const t of traces) traceOwners.set(t, (traceOwners.get(t) ?? new Set()).add(r.id));
    }
    for (const [t, owners] of traceOwners) expect(owners.size, `trace ${t} mixes requests ${[...owners]}`).toBe(1);
    // Every exported span belongs to a request of the workload.
    expect(byRequest.get("?") ?? []).toEqual([]);
    expect(spans.length).toBe(requests.reduce((n, r) => n + (byRequest.get(r.id)?.length ?? 0), 0));
    expect(nginxSplit).toBe(tb.agentStatus("h1").unlinked_ambiguous);
  });

  it("links the calls through the DNAT VIP, where client and server saw different addresses", () => {
    const vip = `${NET.vip}:${NET.vipPort}`;
    const apiHost = HOSTS[SERVICES.find((s) => s.name === "api")!.host];
    const natExits = spans.filter((s) => s.kind === "exit" && s.peer === vip);
    // web's calls to api (chain, fan, cron) and checkout's (otel).
    const wantWeb = requests.filter((r) => r.flow === "chain" || r.flow === "fan").length;
    const wantCheckout = requests.filter((r) => r.flow === "otel").length;
    expect(natExits.filter((s) => s.service === "web").length).toBe(wantWeb);
    expect(natExits.filter((s) => s.service === "checkout").length).toBe(wantCheckout);
    const rawById = new Map(raw.map((s) => [s.span_id, s]));
    for (const x of natExits) {
      const xr = rawById.get(x.spanId)!;
      const server = raw.filter((s) => s.kind === "entry" && s.req_seq === xr.req_seq && s.resp_seq === xr.resp_seq);
      expect(server, `server side of ${x.service} ${x.name}`).toHaveLength(1);
      const e = byId.get(server[0].span_id)!;
      expect(e.service).toBe("api");
      expect(e.local).toBe(`${apiHost.addr}:8080`); // the server saw its own address, not the VIP
      expect(e.peer).toBe(x.local); // DNAT only: the client address is unchanged
      expect(e.traceId).toBe(x.traceId);
      if (x.service === "web") expect(e.parentId).toBe(x.spanId);
      else expect(e.parentId).toBe(x.parentId); // both nest under the SDK's CLIENT span
    }
  });

  it("use_app_trace_id: through the OTel service the trace id is the SDK's, and eBPF spans nest under the SDK's span ids", () => {
    const sdk = sdkSpansByRequest();
    const otel = requests.filter((r) => r.flow === "otel");
    expect(otel.length).toBeGreaterThan(0);
    for (const r of otel) {
      const sd = sdk.get(r.id);
      expect(sd, `the SDK recorded ${r.id}`).toBeDefined();
      const { server, client } = sd!;
      expect(client.traceId).toBe(server.traceId);
      expect(client.parentSpanId).toBe(server.spanId);
      if (r.traceparent) {
        expect(server.traceId).toBe(r.trace_id); // the SDK continued the client's trace
        expect(server.parentSpanId).toBe(r.parent_id);
      } else {
        expect(server.parentSpanId).toBe(""); // the SDK started the trace
      }
      const mine = byRequest.get(r.id)!;
      expect(mine).toHaveLength(6);
      for (const s of mine) expect(s.traceId, `${s.service} ${s.kind} of ${r.id}`).toBe(server.traceId);
      const find = (svc: string, kind: string) => mine.find((s) => s.service === svc && s.kind === kind)!;
      expect(find("checkout", "exit").parentId).toBe(client.spanId);
      expect(find("api", "entry").parentId).toBe(client.spanId);
      expect(find("api", "exit").parentId).toBe(find("api", "entry").spanId);
      expect(find("pricing", "entry").parentId).toBe(find("api", "exit").spanId);
      expect(find("checkout", "entry").parentId).toBe(r.traceparent ? r.parent_id : find("loadgen", "exit").spanId);
      // The raw eSpan of checkout's call carries the SDK's context.
      const xr = rawOf(r.id).find((s) => s.service === "checkout" && s.kind === "exit")!;
      expect([xr.app_trace_id, xr.app_parent_id, xr.app_sampled]).toEqual([server.traceId, client.spanId, true]);
    }
  });

  it("nginx: links every upstream call when one request is open or the client sends traceparent; under concurrency without it, leaves the ambiguous ones unlinked and counted", () => {
    const stats: Record<string, { linked: number; unlinked: number }> = {};
    const entries = new Map(raw.filter((s) => s.service === "edge" && s.kind === "entry").map((s) => [s.thread_trace_id!, s]));
    for (const r of requests.filter((x) => x.flow === "ng")) {
      const exit = rawOf(r.id).find((s) => s.service === "edge" && s.kind === "exit")!;
      expect(exit, `nginx's call for ${r.id}`).toBeDefined();
      const st = (stats[r.phase] ??= { linked: 0, unlinked: 0 });
      if (exit.thread_trace_id) {
        st.linked++;
        const entry = entries.get(exit.thread_trace_id);
        expect(entry?.http_route, `nginx's call for ${r.id} linked to another request`).toBe(exit.http_route);
      } else st.unlinked++;
    }
    console.log(`nginx (one worker): ${Object.entries(stats).map(([p, s]) => `${p}: ${s.linked} linked, ${s.unlinked} unlinked`).join("; ")}`);
    expect(stats.ngseq.unlinked).toBe(0); // one request at a time: one open entry
    expect(stats.ngtp.unlinked).toBe(0); // nginx forwards traceparent: the app context names the entry
    expect(stats.ngconc.unlinked).toBe(tb.agentStatus("h1").unlinked_ambiguous);
    expect(tb.agentStatus("h2").unlinked_ambiguous + tb.agentStatus("h3").unlinked_ambiguous).toBe(0);
  });

  it("client-side roots: the cron job's short-lived curl processes and the loadgen", () => {
    const cron = requests.filter((r) => r.client === "cron");
    expect(cron.length).toBe(4);
    for (const r of cron) {
      const root = byRequest.get(r.id)!.filter((s) => s.parentId === "");
      expect(root.map((s) => `${s.service}:${s.kind}@${s.host}`)).toEqual([`cron:exit@${HOST_OF.cron}`]);
    }
    const curlPids = new Set(raw.filter((s) => s.service === "cron").map((s) => s.pid));
    expect(curlPids.size).toBe(4); // a fresh process per run
  });
});

/** The SDK's SERVER and CLIENT spans of each request through checkout. */
function sdkSpansByRequest() {
  const out = new Map<string, { server: ReturnType<Testbed["otelSpans"]>[number]; client: ReturnType<Testbed["otelSpans"]>[number] }>();
  const all = tb.otelSpans();
  for (const s of all.filter((x) => x.kind === 1)) {
    const id = requestOf(String(s.attributes["url.path"] ?? s.attributes["http.target"] ?? ""))?.id;
    const client = all.find((c) => c.kind === 2 && c.parentSpanId === s.spanId);
    if (id && client) out.set(id, { server: s, client });
  }
  return out;
}
