// A started capture that decodes every batch into `records`, plus views the tests share.
import { open, layout, type Capture, type OpenOptions } from "../../../agent/native/index.js";
import type { ParsedMessage } from "../../../agent/src/assemble/http1.ts";
import { createDecoder, type CaptureRecord } from "../../../agent/src/record.ts";
import { waitUntil } from "./process.ts";

/** What the drain's HTTP scan of a record's payload said, read as the agent reads it. */
export interface ScanResult {
  requests: ParsedMessage[] | undefined;
  responses: { messages: ParsedMessage[]; nextOffset?: number } | undefined;
}

export interface Session {
  cap: Capture;
  records: CaptureRecord[];
  /** The drain's HTTP scan of each data record that has one (agent/native/src/http1_scan.h). */
  scans: WeakMap<CaptureRecord, ScanResult>;
  /** Drains now and waits until check() holds (or the time is up). */
  waitFor(check: (records: CaptureRecord[]) => boolean, timeoutMs?: number): Promise<boolean>;
  close(): void;
}

export function startCapture(options: OpenOptions = {}): Session {
  const decoder = createDecoder(layout());
  const cap = open(options);
  const records: CaptureRecord[] = [];
  const scans = new WeakMap<CaptureRecord, ScanResult>();
  cap.attach();
  cap.start((arena, used) => {
    const owned = decoder.decodeArena(arena, used);
    let i = 0;
    // The same frames again, in place, as the agent reads them: the scans.
    decoder.forEachRecord(arena, used, (r) => {
      const own = owned[i++];
      if (!r.scan) return;
      const requests = r.scan.requests()?.slice(); // the view reuses its results
      const responses = r.scan.responses([]);
      scans.set(own, { requests, responses: responses && { messages: responses.messages.slice(), nextOffset: responses.nextOffset } });
    });
    for (const r of owned) records.push(r);
  }, 5);
  let closed = false;
  return {
    cap,
    records,
    scans,
    waitFor: (check, timeoutMs = 5000) =>
      waitUntil(() => {
        if (!closed) cap.flush();
        return check(records);
      }, timeoutMs),
    close() {
      if (closed) return;
      closed = true;
      cap.stop();
      cap.close();
    },
  };
}

export const dataOf = (records: CaptureRecord[], pid: number) =>
  records.filter((r) => r.kind === "data" && r.pid === pid);

export const closesOf = (records: CaptureRecord[], pid: number) =>
  records.filter((r) => r.kind === "close" && r.pid === pid);

/** Data records of one process grouped by connection, in arrival order. */
export function byConnection(records: CaptureRecord[], pid: number): Map<bigint, CaptureRecord[]> {
  const m = new Map<bigint, CaptureRecord[]>();
  for (const r of dataOf(records, pid)) {
    const list = m.get(r.connId) ?? [];
    list.push(r);
    m.set(r.connId, list);
  }
  return m;
}

/** The server-side connection that is the peer of a client connection (same two ports). */
export function peerOf(client: CaptureRecord[], server: Map<bigint, CaptureRecord[]>): CaptureRecord[] | undefined {
  const c = client[0];
  for (const list of server.values()) {
    const s = list[0];
    if (s.localPort === c.remotePort && s.remotePort === c.localPort) return list;
  }
  return undefined;
}

/** Compact text of message starts for failure messages. */
export const summarize = (rs: CaptureRecord[]) =>
  rs.map((r) => `${r.comm}/${r.pid} ${r.role} ${r.dir} ${r.localPort}->${r.remotePort} seq=${r.seq} len=${r.bytes}`).join("\n");
