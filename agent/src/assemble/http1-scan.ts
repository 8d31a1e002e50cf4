// The addon's scan of a record's payload (agent/native/src/http1_scan.h: the HTTP/1.x heads,
// found in C while the ring buffer was drained) read back as http1.ts's own results, so that JS
// does not walk the bytes: parsing heads in JS was ~0.7 µs a span with hot caches.
//
// The scan restates parseRequests / parseResponses; where it could differ it tells JS to parse
// the payload itself (ESPAN_SCAN_JS), and answers to HEAD or CONNECT (framed by the method the
// scan does not know) are parsed in JS too. A head read from the scan keeps in `headers` only
// the app-context headers (app-context.ts): its framing is the scan's.
import { clear } from "./clear.ts";
import type { Layout } from "../../native/index.js";
import { latin1, methodOf, NO_HEADERS, type HttpHead, type ParsedMessage } from "./http1.ts";

type ScanLayout = Layout["scan"];

/** A request-target's strings (HttpScanView.target). */
interface TargetEntry {
  target: string;
  path: string;
  plen: number;
}

const TARGET_SLOTS = 256;
/** Longer targets (query strings with ids, tokens) are seldom the same twice: not kept. */
const MAX_CACHED_TARGET = 512;

/** buf[at, at + s.length) holds the latin1 characters of s. */
function sameLatin1(buf: Buffer, at: number, s: string): boolean {
  for (let i = s.length - 1; i >= 0; i--) if (buf[at + i] !== s.charCodeAt(i)) return false;
  return true;
}

/** One record's scan, read in place: the decoder moves one view from record to record (valid
 * during the batch callback only, like the record). */
export class HttpScanView {
  private buf: Buffer = Buffer.alloc(0);
  private dv: DataView = new DataView(new ArrayBuffer(8));
  private at = 0;
  private payloadAt = 0;
  private readonly L: ScanLayout;
  private readonly le: boolean;
  private readonly m: ScanLayout["msg"];
  /** Results are reused from call to call (less to allocate per span: conn.ts says how much):
   * the caller reads them at once, as it reads the record. */
  private readonly out: ParsedMessage[] = [];
  private readonly result: { messages: ParsedMessage[]; nextOffset?: number } = { messages: this.out, nextOffset: undefined };
  /** Request-targets seen, direct-mapped by their length and two of their bytes (target()). */
  private readonly targets: (TargetEntry | undefined)[] = new Array<TargetEntry | undefined>(TARGET_SLOTS).fill(undefined);

  constructor(layout: Layout) {
    this.L = layout.scan;
    this.m = layout.scan.msg;
    this.le = layout.littleEndian;
  }

  /** The scan at `at` in `buf`, of the payload at `payloadAt`. */
  moveTo(buf: Buffer, dv: DataView, at: number, payloadAt: number): void {
    this.buf = buf;
    this.dv = dv;
    this.at = at;
    this.payloadAt = payloadAt;
  }

  /** parseRequests(payload), or undefined when JS must parse the payload itself. The array is
   * reused by the next call. */
  requests(): ParsedMessage[] | undefined {
    const { L, buf } = this;
    if (buf[this.at + L.kind] !== L.kinds.REQUESTS || (buf[this.at + L.flags] & L.flagBits.JS) !== 0) return undefined;
    const n = this.dv.getUint16(this.at + L.count, this.le);
    const out = this.out;
    clear(out);
    for (let i = 0; i < n; i++) {
      const at = this.at + L.msgs + i * L.msgSize;
      out.push({ offset: this.u16(at + this.m.at), head: this.head(at, true), bytes: this.bytes(at) });
    }
    return out;
  }

  /**
   * parseResponses(payload, methods), or undefined when JS must parse the payload itself. The
   * scan lists every head in order; an interim 1xx is paired with the final response after it
   * here, as parseResponses does. The result is reused by the next call.
   */
  responses(methods: readonly (string | undefined)[]): { messages: ParsedMessage[]; nextOffset?: number } | undefined {
    const { L, buf } = this;
    if (buf[this.at + L.kind] !== L.kinds.RESPONSES || (buf[this.at + L.flags] & L.flagBits.JS) !== 0) return undefined;
    for (const m of methods) if (m === "HEAD" || m === "CONNECT") return undefined;
    const n = this.dv.getUint16(this.at + L.count, this.le);
    const messages = this.out;
    clear(messages);
    const result = this.result;
    result.nextOffset = undefined;
    let interimAt: number | undefined;
    let interimHead: HttpHead | undefined;
    for (let i = 0; i < n; i++) {
      const at = this.at + L.msgs + i * L.msgSize;
      const head = this.head(at, false);
      const offset = this.u16(at + this.m.at);
      const bytes = this.bytes(at);
      if (head.status! < 200 && head.status !== 101 && bytes !== undefined) {
        if (interimAt === undefined) {
          interimAt = offset;
          interimHead = head;
        }
        continue;
      }
      const start = interimAt ?? offset;
      messages.push({ offset: start, head, bytes: bytes === undefined ? undefined : offset + bytes - start });
      interimAt = undefined;
      interimHead = undefined;
      if (bytes === undefined) return result;
    }
    if (interimAt !== undefined) {
      messages.push({ offset: interimAt, head: interimHead! }); // a 1xx whose final response was not captured
      return result;
    }
    if ((buf[this.at + L.flags] & L.flagBits.ENDED) !== 0) result.nextOffset = this.dv.getUint32(this.at + L.endAt, this.le);
    return result;
  }

  /**
   * The request-target buf[t, t + tlen) and its path (its first plen bytes) as strings: the
   * ones made for the same bytes before when they are in the cache. A server answers a few
   * targets over and over: the same strings then, no new ones per request (latin1Slice is a
   * call into C++ and an allocation), and the span's operation and the JSON writer's runs
   * (ship/span-json.ts) compare them by identity.
   */
  private target(buf: Buffer, t: number, tlen: number, plen: number): TargetEntry {
    const slot = (tlen * 31 + (tlen > 1 ? buf[t + 1] : 0) * 7 + (tlen > 0 ? buf[t + tlen - 1] : 0)) & (TARGET_SLOTS - 1);
    const hit = this.targets[slot];
    if (hit !== undefined && hit.plen === plen && hit.target.length === tlen && sameLatin1(buf, t, hit.target)) return hit;
    const target = latin1(buf, t, t + tlen);
    const e: TargetEntry = { target, path: plen === tlen ? target : target.slice(0, plen), plen };
    if (tlen <= MAX_CACHED_TARGET) this.targets[slot] = e;
    return e;
  }

  private u16(at: number): number {
    return this.dv.getUint16(at, this.le);
  }

  private bytes(msg: number): number | undefined {
    return (this.buf[msg + this.m.flags] & this.L.flagBits.LENGTH) !== 0 ? this.dv.getUint32(msg + this.m.bytes, this.le) : undefined;
  }

  /** The head of message `msg`, with every field of http1.ts's heads, in their order. */
  private head(msg: number, request: boolean): HttpHead {
    const { m, L, buf, payloadAt } = this;
    const flags = buf[msg + m.flags];
    const complete = (flags & L.flagBits.HEAD_COMPLETE) !== 0;
    let method: string | undefined;
    let target: string | undefined;
    let path: string | undefined;
    let status: number | undefined;
    if (request) {
      const at = payloadAt + this.u16(msg + m.at);
      method = methodOf(buf, at, at + this.u16(msg + m.method_len));
      const t = payloadAt + this.u16(msg + m.target_at);
      const tlen = this.u16(msg + m.target_len);
      const plen = this.u16(msg + m.path_len);
      const e = this.target(buf, t, tlen, plen);
      target = e.target;
      path = e.path;
    } else {
      status = this.u16(msg + m.status);
    }
    let headers: Map<string, string> | undefined;
    if (request) {
      const names = L.appHeaders;
      for (let k = 0; k < names.length; k++) {
        const off = this.u16(msg + m.app + 4 * k);
        if (off === L.absent) continue;
        const at = payloadAt + off;
        (headers ??= new Map()).set(names[k], latin1(buf, at, at + this.u16(msg + m.app + 4 * k + 2)));
      }
    }
    return {
      kind: request ? "request" : "response",
      version: (flags & L.flagBits.V11) !== 0 ? "1.1" : "1.0",
      method, target, path, status,
      headers: headers ?? NO_HEADERS,
      headComplete: complete,
      headBytes: complete ? this.u16(msg + m.head_bytes) : undefined,
    };
  }
}
