// The testbed's hosts, services and call graph: one description read by the launcher
// (testbed.ts), the workload (workload.ts), the analysis (analyze.ts), the tests and the demo.
// The network constants must match testbed/net.sh, which builds the namespaces.

export type HostName = "h1" | "h2" | "h3";

export interface Host {
  name: HostName;
  /** Network namespace (under /run/netns). */
  netns: string;
  addr: string;
  /** The variable that selects this host's processes: its services get it in their
   * environment, and only this host's agent lists it in --trace-env-list. */
  selectVar: string;
}

export const NET = {
  /** The ingest's side: a veth in the root namespace, bridged to the hosts. */
  rootAddr: "10.77.0.1",
  /** The kernel DNAT service VIP (iptables nat OUTPUT in every host namespace). */
  vip: "10.77.0.100",
  vipPort: 80,
  switchNetns: "estb-sw",
  rootIf: "estb-root",
} as const;

export const HOSTS: Record<HostName, Host> = {
  h1: { name: "h1", netns: "estb-h1", addr: "10.77.0.11", selectVar: "ESPAN_TB_HOST_H1" },
  h2: { name: "h2", netns: "estb-h2", addr: "10.77.0.12", selectVar: "ESPAN_TB_HOST_H2" },
  h3: { name: "h3", netns: "estb-h3", addr: "10.77.0.13", selectVar: "ESPAN_TB_HOST_H3" },
};
export const HOST_NAMES = Object.keys(HOSTS) as HostName[];

export type Runtime = "python" | "node" | "node-otel" | "nginx";

export interface ServiceSpec {
  /** The service name espan must report (from the environment variable in `env`). */
  name: string;
  host: HostName;
  runtime: Runtime;
  port: number;
  /** Environment that names the service (DK_BPFTRACE_SERVICE, DD_SERVICE, OTEL_SERVICE_NAME). */
  env: Record<string, string>;
  /** flow → upstream base URLs, called in order for GET /<flow>/<id>. */
  calls: Record<string, string[]>;
}

const url = (host: HostName, port: number) => `http://${HOSTS[host].addr}:${port}`;
export const VIP_URL = `http://${NET.vip}:${NET.vipPort}`;

/**
 * Services. api (h2:8080) is reached only through the VIP. pricing sets both DK_BPFTRACE_SERVICE
 * and DD_SERVICE: the first wins. checkout is the OTel-instrumented Node service; edge is nginx.
 */
export const SERVICES: ServiceSpec[] = [
  { name: "web", host: "h1", runtime: "python", port: 8080, env: { DK_BPFTRACE_SERVICE: "web" },
    calls: { chain: [VIP_URL], fan: [VIP_URL, url("h3", 8080), url("h2", 8081)] } },
  { name: "edge", host: "h1", runtime: "nginx", port: 8088, env: { DK_BPFTRACE_SERVICE: "edge" },
    calls: { ng: [url("h3", 8080)] } },
  { name: "api", host: "h2", runtime: "python", port: 8080, env: { DD_SERVICE: "api" },
    calls: { chain: [url("h3", 8080)], otel: [url("h2", 8081)] } },
  { name: "pricing", host: "h2", runtime: "python", port: 8081, env: { DK_BPFTRACE_SERVICE: "pricing", DD_SERVICE: "not-pricing" },
    calls: {} },
  { name: "inventory", host: "h3", runtime: "node", port: 8080, env: { DK_BPFTRACE_SERVICE: "inventory" },
    calls: {} },
  { name: "checkout", host: "h3", runtime: "node-otel", port: 8090, env: { OTEL_SERVICE_NAME: "checkout" },
    calls: { otel: [VIP_URL] } },
];

/** The traffic driver (a long-lived traced client) and the cron-like job. */
export const LOADGEN = { name: "loadgen", host: "h2" as HostName, env: { DK_BPFTRACE_SERVICE: "loadgen" } };
export const CRON = { name: "cron", host: "h3" as HostName, env: { DK_BPFTRACE_SERVICE: "cron" } };

export const service = (name: string): ServiceSpec => {
  const s = SERVICES.find((x) => x.name === name);
  if (!s) throw new Error(`no service ${name}`);
  return s;
};
export const serviceUrl = (name: string): string => url(service(name).host, service(name).port);

/** The host each traced process name belongs to (for host.name checks). */
export const HOST_OF: Record<string, HostName> = {
  ...Object.fromEntries(SERVICES.map((s) => [s.name, s.host])),
  [LOADGEN.name]: LOADGEN.host,
  [CRON.name]: CRON.host,
};

/** Where each flow enters the system. */
export const FLOW_ENTRY: Record<string, string> = { chain: "web", fan: "web", ng: "edge", otel: "checkout" };

/**
 * The known call graph of one request, as edges "<parent>><child>", each side "<service>:<entry|exit>".
 * A parent that is not an eSpan is "root" (none), "app" (the client's own W3C span, whose id
 * the loadgen reports) or "sdk-client" (the OTel SDK's CLIENT span in checkout for this request).
 * `client` is the service of the root process (loadgen, or cron).
 *
 * With use_app_trace_id, a span that carries an app parent id (from traceparent) nests under
 * that id: the whole nginx path when the client sends traceparent (nginx forwards it), and in
 * checkout's flow the exit and the entry it reaches (the SDK's traceparent).
 */
export function expectedEdges(flow: string, o: { client: string; traceparent: boolean; nginxLinked?: boolean }): string[] {
  const top = o.traceparent ? [`app>${o.client}:exit`] : [`root>${o.client}:exit`];
  const call = (from: string, to: string) => [`${from}:entry>${from}:exit`, `${from}:exit>${to}:entry`];
  switch (flow) {
    case "chain":
      return [...top, `${o.client}:exit>web:entry`, ...call("web", "api"), ...call("api", "inventory")];
    case "fan":
      return [...top, `${o.client}:exit>web:entry`, ...call("web", "api"), ...call("web", "inventory"), ...call("web", "pricing")];
    case "ng":
      if (o.traceparent) return [...top, "app>edge:entry", "app>edge:exit", "app>inventory:entry"];
      return [
        ...top, `${o.client}:exit>edge:entry`,
        o.nginxLinked === false ? "root>edge:exit" : "edge:entry>edge:exit",
        "edge:exit>inventory:entry",
      ];
    case "otel":
      return [
        ...top, o.traceparent ? "app>checkout:entry" : `${o.client}:exit>checkout:entry`,
        "sdk-client>checkout:exit", "sdk-client>api:entry", ...call("api", "pricing"),
      ];
    default:
      throw new Error(`unknown flow ${flow}`);
  }
}
