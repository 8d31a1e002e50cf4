/**
 * The world the traffic runs in: hosts, the processes on them, and who calls whom.
 * Built once per seed, before any request, so a service keeps its address, pid, protocol,
 * instrumentation and callees for the whole run, as a real deployment does.
 */
import { Rng } from "./rng.ts";

/** What a process is to the model. Only "service" and "client" processes are traced. */
export type ProcKind =
  | "service" // traced server: thread-per-request, may call services and databases
  | "client" // traced cron-like client: makes root calls from a thread with no open entry
  | "db" // untraced database: exits to it have no entry
  | "proxy" // untraced middle hop (legacy gateway): splits a tree, its callee's entry is a root
  | "external"; // untraced ingress / internet callers: their requests start most trees

export interface Host {
  idx: number;
  name: string;
  nodeIp: string;
  /** Where in the agent's batching period this host's flushes fall (ns). */
  flushPhase: number;
}

/** One thing a server can be asked; the exit and the entry of a request share it. */
export interface Route {
  operation: string;
  /** HTTP and gRPC only. */
  method?: string;
  route?: string;
}

export interface Proc {
  idx: number;
  kind: ProcKind;
  host: Host;
  pid: number;
  processName: string;
  service: string;
  ip: string;
  port: number;
  /** Service VIP that NAT'd clients dial instead of ip:port. */
  vip: string;
  vipPort: number;
  traced: boolean;
  /** Propagates W3C trace context (an app tracer is installed). */
  instrumented: boolean;
  /** Call-graph level: services call only deeper levels, so the graph is a DAG of depth ≤ maxDepth. */
  level: number;
  /** l7_proto of the requests it serves. */
  proto: string;
  callees: Proc[];
  dbs: Proc[];
  routes: Route[];
  /** Per worker thread (tid = pid + index): end of its last request, Infinity while busy. */
  threads: number[];
}

export interface Topology {
  hosts: Host[];
  services: Proc[];
  /** Level-0 services: what external callers hit. */
  entryServices: Proc[];
  /** Services cron clients call. */
  clientTargets: Proc[];
  clients: Proc[];
  dbs: Proc[];
  proxies: Proc[];
  externals: Proc[];
}

export interface TopologyParams {
  hosts: number;
  services: number;
  maxDepth: number;
  appInstrumentedFraction: number;
  batchIntervalNs: number;
}

const SERVICE_NAMES = [
  "frontend", "checkout", "cart", "catalog", "payment", "shipping", "users", "auth", "search",
  "recommendation", "inventory", "pricing", "orders", "notification", "reviews", "ads", "currency",
  "email", "fraud", "loyalty",
];
const RUNTIMES = ["java", "python3", "gunicorn", "dotnet", "ruby", "php-fpm", ""]; // "" = a Go binary named after its service
const HTTP_PATHS = ["/items", "/items/:id", "/users/:id", "/cart", "/orders", "/orders/:id", "/search", "/prices", "/health"];
const HTTP_METHODS = ["GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"];
const GRPC_METHODS = ["Get", "List", "Create", "Update", "Check"];
const DB_KINDS = [
  { proto: "mysql", port: 3306, processName: "mysqld", ops: ["SELECT", "SELECT", "SELECT", "INSERT", "UPDATE", "DELETE", "COMMIT"] },
  { proto: "redis", port: 6379, processName: "redis-server", ops: ["GET", "GET", "SET", "HGETALL", "EXPIRE", "DEL", "MGET"] },
  { proto: "postgresql", port: 5432, processName: "postgres", ops: ["SELECT", "SELECT", "INSERT", "UPDATE", "BEGIN", "COMMIT"] },
];
/** pid spacing per process: room for its worker threads' tids. */
const PID_STEP = 512;
export const MAX_THREADS = PID_STEP - 12;

function dotted(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function buildTopology(rng: Rng, p: TopologyParams): Topology {
  const hosts: Host[] = [];
  for (let h = 0; h < p.hosts; h++) {
    hosts.push({
      idx: h,
      name: `node-${h + 1}`,
      nodeIp: dotted((192 << 24) | (168 << 16) | (h + 10)),
      flushPhase: p.batchIntervalNs > 0 ? rng.int(0, p.batchIntervalNs - 1) : 0,
    });
  }
  // Pod addresses 10.<1+h/16>.<h%16*16 + k/256>.<k%256>: unique per (host, pod) for ≤ 4096 pods a host.
  const podsOnHost = new Array<number>(p.hosts).fill(0);
  const nextPid = hosts.map(() => rng.int(700, 3000));
  const procs: Proc[] = [];
  let outside = 0;
  const place = (kind: ProcKind, host: Host, service: string, processName: string, port: number, proto: string): Proc => {
    let ip: string;
    let pid = 1;
    if (host.idx < 0) {
      ip = dotted((172 << 24) | (16 << 16) | ++outside);
    } else {
      const k = 10 + podsOnHost[host.idx]++;
      ip = dotted((10 << 24) | ((1 + (host.idx >> 4)) << 16) | (((host.idx & 15) * 16 + (k >> 8)) << 8) | (k & 255));
      pid = nextPid[host.idx];
      nextPid[host.idx] += PID_STEP;
    }
    const proc: Proc = {
      idx: procs.length, kind, host, pid, processName: processName || service, service, ip, port,
      vip: dotted((10 << 24) | (96 << 16) | (procs.length + 1)), vipPort: 80,
      traced: kind === "service" || kind === "client", instrumented: false, level: 0, proto,
      callees: [], dbs: [], routes: [], threads: [],
    };
    const initialThreads = kind === "client" ? 2 : rng.int(4, 16);
    for (let i = 0; i < initialThreads; i++) proc.threads.push(-Infinity);
    procs.push(proc);
    return proc;
  };

  // Services. The first maxDepth form a chain (level i calls level i+1): every run has a
  // 3-tier chain and reaches full depth; the rest get random levels.
  const services: Proc[] = [];
  for (let i = 0; i < p.services; i++) {
    const base = SERVICE_NAMES[i % SERVICE_NAMES.length];
    const name = i < SERVICE_NAMES.length ? base : `${base}-${Math.floor(i / SERVICE_NAMES.length)}`;
    const grpc = i > 0 && rng.chance(0.2); // the chain head stays HTTP: browsers call it
    const s = place("service", hosts[i % p.hosts], name, rng.pick(RUNTIMES), grpc ? 9090 : 8080 + (i % 10), grpc ? "grpc" : "http");
    s.level = i < p.maxDepth ? i : rng.int(0, p.maxDepth - 1);
    const nRoutes = rng.int(2, 5);
    for (let r = 0; r < nRoutes; r++) {
      if (grpc) {
        const op = `/shop.${capitalize(name.replace(/-\d+$/, ""))}Service/${rng.pick(GRPC_METHODS)}${r}`;
        s.routes.push({ operation: op, method: "POST", route: op });
      } else {
        const route = `/api/${name}${rng.pick(HTTP_PATHS)}`;
        const method = rng.pick(HTTP_METHODS);
        s.routes.push({ operation: `${method} ${route}`, method, route });
      }
    }
    services.push(s);
  }
  // Instrumented services: exactly round(fraction × n), so small topologies respect the share too.
  const nInstr = Math.round(p.appInstrumentedFraction * services.length);
  for (const s of rng.shuffle(services.slice()).slice(0, nInstr)) s.instrumented = true;

  services.forEach((s, i) => {
    const deeper = services.filter((o) => o.level > s.level);
    if (i + 1 < Math.min(p.maxDepth, services.length)) s.callees.push(services[i + 1]);
    const extra = Math.min(deeper.length, rng.int(1, 3));
    for (const o of rng.shuffle(deeper).slice(0, extra)) if (!s.callees.includes(o)) s.callees.push(o);
  });

  const dbs: Proc[] = [];
  const nDbs = Math.max(1, Math.round(p.services / 4));
  for (let i = 0; i < nDbs; i++) {
    const k = DB_KINDS[i % DB_KINDS.length];
    const db = place("db", hosts[rng.int(0, p.hosts - 1)], `${k.proto}-${i + 1}`, k.processName, k.port, k.proto);
    db.routes = k.ops.map((operation) => ({ operation }));
    dbs.push(db);
  }
  for (const s of services) {
    s.dbs.push(dbs[rng.int(0, dbs.length - 1)]);
    if (dbs.length > 1 && rng.chance(0.4)) {
      const other = dbs[rng.int(0, dbs.length - 1)];
      if (other !== s.dbs[0]) s.dbs.push(other);
    }
  }

  const clients: Proc[] = [];
  const CLIENT_NAMES = ["cron", "batch-report", "sync-job"];
  for (let i = 0; i < Math.min(p.hosts, CLIENT_NAMES.length); i++) {
    const c = place("client", hosts[i], CLIENT_NAMES[i], rng.pick(["python3", "java", ""]), 0, "http");
    c.instrumented = rng.chance(p.appInstrumentedFraction);
    clients.push(c);
  }

  const proxies = [place("proxy", hosts[rng.int(0, p.hosts - 1)], "legacy-gateway", "haproxy", 8000, "http")];

  // Ingress / internet callers live outside the cluster: no host of ours, 172.16.0.0/16.
  const edge: Host = { idx: -1, name: "edge", nodeIp: "172.16.255.254", flushPhase: 0 };
  const externals: Proc[] = [];
  for (let i = 0; i < 2; i++) {
    externals.push(place("external", edge, `ingress-${i + 1}`, "envoy", 0, "http"));
  }

  const entryServices = services.filter((s) => s.level === 0);
  const clientTargets = services.filter((s) => s.level <= 1);
  return { hosts, services, entryServices, clientTargets, clients, dbs, proxies, externals };
}
