// The generator's TCP model: keep-alive connections whose seqs follow real TCP arithmetic
// (mod 2^32, wrapping), and NAT / service VIPs that change addresses but never seqs.
import { describe, expect, it } from "vitest";
import { generateTraffic } from "../../gen/traffic.ts";
import { SEQ_SPACE, seqAdd } from "../../gen/tcp.ts";
import { connections, index } from "./index-traffic.ts";

const t = generateTraffic({ seed: 21, traces: 8000, natFraction: 0.3 });
const ix = index(t);

describe("TCP seq arithmetic", () => {
  it("seqAdd wraps modulo 2^32", () => {
    expect(seqAdd(SEQ_SPACE - 10, 25)).toBe(15);
    expect(seqAdd(0, SEQ_SPACE - 1)).toBe(SEQ_SPACE - 1);
  });

  for (const kind of ["exit", "entry"] as const) {
    it(`on each connection (${kind} side) every request advances both seqs by the bytes sent`, () => {
      let consecutive = 0;
      let wraps = 0;
      const bad: string[] = [];
      for (const conn of connections(ix, kind)) {
        for (let i = 1; i < conn.length; i++) {
          const a = conn[i - 1];
          const b = conn[i];
          // Client → server bytes are the exit's bytes_written and the entry's bytes_read.
          const sent = kind === "exit" ? [a.bytes_written!, a.bytes_read!] : [a.bytes_read!, a.bytes_written!];
          if (b.req_seq !== seqAdd(a.req_seq, sent[0]) || b.resp_seq !== seqAdd(a.resp_seq, sent[1])) bad.push(b.span_id);
          if (b.req_seq < a.req_seq || b.resp_seq < a.resp_seq) wraps++;
          consecutive++;
        }
      }
      expect(bad).toEqual([]);
      expect(consecutive).toBeGreaterThan(t.spans.length / 4); // keep-alive: most requests reuse a connection
      expect(wraps).toBeGreaterThan(0);
    });
  }

  it("keep-alive connections carry requests of different traces", () => {
    const multi = connections(ix, "exit").filter((c) => new Set(c.map((s) => t.truth.get(s.span_id)!.root)).size > 1);
    expect(multi.length).toBeGreaterThan(0);
  });
});

describe("NAT / service VIP", () => {
  it("a pair is either direct (mirrored addresses) or NAT'd (all differ), seqs equal either way", () => {
    let nat = 0;
    for (const [x, e] of ix.pairs) {
      expect([x.req_seq, x.resp_seq]).toEqual([e.req_seq, e.resp_seq]);
      const direct = x.dst_ip === e.src_ip && x.dst_port === e.src_port && x.src_ip === e.dst_ip && x.src_port === e.dst_port;
      if (direct) continue;
      nat++;
      expect(x.dst_ip).not.toBe(e.src_ip); // the client dialled the VIP
      expect(x.dst_ip.startsWith("10.96.")).toBe(true);
      expect(e.dst_ip).not.toBe(x.src_ip); // the server sees the client's node (SNAT)
      expect(e.dst_ip.startsWith("192.168.")).toBe(true);
    }
    // natFraction is per connection; requests per connection vary, so allow some slack.
    expect(nat / ix.pairs.length).toBeGreaterThan(0.2);
    expect(nat / ix.pairs.length).toBeLessThan(0.4);
    const none = index(generateTraffic({ seed: 21, traces: 500, natFraction: 0 }));
    expect(none.pairs.every(([x, e]) => x.dst_ip === e.src_ip && x.src_ip === e.dst_ip)).toBe(true);
  });
});
