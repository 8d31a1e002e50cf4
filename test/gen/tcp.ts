/**
 * TCP connections of the traffic model: keep-alive pools and sequence-number arithmetic.
 * The linker joins client and server spans only by (req_seq, resp_seq), so these numbers must
 * behave like the kernel's: per connection, a random initial sequence number per direction, the
 * first data byte at ISN + 1 (the SYN takes one), each message advancing its sender's seq by its
 * length, everything modulo 2^32. Requests on one connection are strictly sequential (HTTP/1.1
 * keep-alive without pipelining), so a connection is busy from request start to response end.
 */
import { Rng } from "./rng.ts";

/** 2^32: TCP sequence space. */
export const SEQ_SPACE = 4294967296;

/** (seq + n) mod 2^32. `>>> 0` is ToUint32, i.e. exact modulo 2^32 for any n < 2^53. */
export function seqAdd(seq: number, n: number): number {
  return (seq + n) >>> 0;
}

/**
 * A random initial sequence number. Uniform ISNs almost never wrap within a connection's life
 * (that takes 4 GiB), so one direction in eight starts within 1 MiB of 2^32: wrap-around then
 * happens after a few requests, as it does on long-lived real connections.
 */
export function initialSeq(rng: Rng): number {
  return rng.chance(0.125) ? SEQ_SPACE - rng.int(1, 1 << 20) : rng.u32();
}

export interface Conn {
  /** Client socket, its own view: local address, and the address it dialled (a VIP under NAT). */
  clientIp: string;
  clientPort: number;
  dialIp: string;
  dialPort: number;
  /** Server socket, its own view: local address, and the peer it sees (SNAT'd under NAT). */
  serverIp: string;
  serverPort: number;
  peerIp: string;
  peerPort: number;
  nat: boolean;
  /** Seq of the next byte each side will send. */
  clientSeq: number;
  serverSeq: number;
  /** End of the last request (ns offset), or Infinity while a request is in flight. */
  busyUntil: number;
  /** Requests left before the client closes it (keep-alive max): connections churn, ISNs renew. */
  requestsLeft: number;
}

/**
 * One request/response went over the connection: the client sent reqBytes, the server respBytes.
 * Read clientSeq / serverSeq first: they are the request's req_seq / resp_seq.
 */
export function advance(conn: Conn, reqBytes: number, respBytes: number): void {
  conn.clientSeq = seqAdd(conn.clientSeq, reqBytes);
  conn.serverSeq = seqAdd(conn.serverSeq, respBytes);
}

/**
 * Ephemeral ports per local IP, handed out in turn over Linux's default range, so a 4-tuple is
 * reused only after ~28k connections from one address (as the kernel does).
 */
export class PortAllocator {
  private next = new Map<string, number>();
  constructor(private rng: Rng) {}

  take(ip: string): number {
    let p = this.next.get(ip) ?? this.rng.int(32768, 60999);
    const port = p;
    p = p >= 60999 ? 32768 : p + 1;
    this.next.set(ip, p);
    return port;
  }
}

/** The idle connections between one caller process and one target: reused first, opened on demand. */
export class ConnPool {
  readonly conns: Conn[] = [];

  /**
   * A connection free at time t. "Free" means its last request ended by t: requests are appended
   * to a connection's timeline in time order, so its seqs grow with time as on a real socket.
   * Traces are generated one after another but overlap in time, so the pool grows to the
   * concurrency it sees, as a real pool does. Null when all are busy: the caller opens one.
   */
  acquire(t: number): Conn | null {
    const conns = this.conns;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i];
      if (c.busyUntil <= t) {
        c.busyUntil = Infinity;
        return c;
      }
    }
    return null;
  }

  /** A newly opened connection, busy with its first request. */
  add(c: Conn): Conn {
    c.busyUntil = Infinity;
    this.conns.push(c);
    return c;
  }

  /** The response has been read at `end`; closes the connection when its keep-alive budget is spent. */
  release(c: Conn, end: number): void {
    c.busyUntil = end;
    if (--c.requestsLeft > 0) return;
    const i = this.conns.indexOf(c);
    this.conns[i] = this.conns[this.conns.length - 1];
    this.conns.pop();
  }
}
