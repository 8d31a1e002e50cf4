// The agent's in-place record cursor (Decoder.forEachRecord) against the copying decoder
// (decodeArena): the same values for every field, over arenas of varied records, and the
// caches (addresses, thread names) never serving a stale value.
import { describe, expect, it } from "vitest";
import { layout } from "../../../agent/native/index.js";
import { createDecoder, type CaptureRecord } from "../../../agent/src/record.ts";

const l = layout();
const f = l.fields;

interface Rec {
  kind: number;
  ts: bigint;
  conn: bigint;
  prevFirst?: bigint;
  prevLast?: bigint;
  prevBytes?: bigint;
  pid: number;
  tid: number;
  seq: number;
  bytes: number;
  flags?: number;
  dir: number;
  role: number;
  family: number;
  laddr: number[];
  raddr: number[];
  lport: number;
  rport: number;
  aux?: number;
  comm: string;
  payload: string;
}

function arenaOf(recs: Rec[]): { arena: Buffer; used: number } {
  const arena = Buffer.alloc(64 * 1024);
  const dv = new DataView(arena.buffer, arena.byteOffset, arena.byteLength);
  let used = 0;
  for (const r of recs) {
    const payload = Buffer.from(r.payload, "latin1");
    const len = l.recordSize + payload.length;
    dv.setUint32(used, len, true);
    const at = used + l.frameHeader;
    dv.setBigUint64(at + f.ts_ns.offset, r.ts, true);
    dv.setBigUint64(at + f.conn_id.offset, r.conn, true);
    dv.setBigUint64(at + f.prev_first_ns.offset, r.prevFirst ?? 0n, true);
    dv.setBigUint64(at + f.prev_last_ns.offset, r.prevLast ?? 0n, true);
    dv.setBigUint64(at + f.prev_bytes.offset, r.prevBytes ?? 0n, true);
    dv.setUint32(at + f.pid.offset, r.pid, true);
    dv.setUint32(at + f.tid.offset, r.tid, true);
    dv.setUint32(at + f.seq.offset, r.seq, true);
    dv.setUint32(at + f.bytes.offset, r.bytes, true);
    dv.setUint16(at + f.cap_len.offset, payload.length, true);
    dv.setUint16(at + f.flags.offset, r.flags ?? 0, true);
    dv.setUint8(at + f.kind.offset, r.kind);
    dv.setUint8(at + f.dir.offset, r.dir);
    dv.setUint8(at + f.role.offset, r.role);
    dv.setUint8(at + f.family.offset, r.family);
    dv.setUint16(at + f.lport.offset, r.lport, true);
    dv.setUint16(at + f.rport.offset, r.rport, true);
    dv.setUint32(at + f.aux.offset, r.aux ?? 0, true);
    arena.set(r.laddr, at + f.laddr.offset);
    arena.set(r.raddr, at + f.raddr.offset);
    arena.write(r.comm, at + f.comm.offset, "utf8");
    payload.copy(arena, at + l.recordSize);
    used = at + ((len + 7) & ~7);
  }
  return { arena, used };
}

const FIELDS: (keyof CaptureRecord)[] = [
  "kind", "tsNs", "connId", "prevFirstNs", "prevLastNs", "prevBytes", "pid", "tid", "seq", "bytes", "flags", "fin",
  "truncated", "dir", "role", "family", "localIp", "localPort", "remoteIp", "remotePort", "aux", "comm",
];

/** What the cursor shows for each frame, copied out during the call. */
function viaCursor(arena: Buffer, used: number) {
  const out: Record<string, unknown>[] = [];
  createDecoder(l).forEachRecord(arena, used, (r) => {
    const o: Record<string, unknown> = {};
    for (const k of FIELDS) o[k] = r[k];
    o.payload = r.payload.toString("latin1");
    out.push(o);
  });
  return out;
}

function viaCopy(arena: Buffer, used: number) {
  return createDecoder(l).decodeArena(arena, used).map((r) => {
    const o: Record<string, unknown> = {};
    for (const k of FIELDS) o[k] = r[k];
    o.payload = r.payload.toString("latin1");
    return o;
  });
}

const v4 = (a: number, b: number, c: number, d: number) => [a, b, c, d, ...new Array(12).fill(0)];
const mapped = (a: number, b: number, c: number, d: number) => [...new Array(10).fill(0), 0xff, 0xff, a, b, c, d];
const v6 = (hex: string) => [...Buffer.from(hex.padStart(32, "0"), "hex")];

describe("Decoder.forEachRecord", () => {
  it("shows every field as decodeArena decodes it, record after record", () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) >>> 0) % n);
    const kinds = [l.kinds.DATA, l.kinds.CLOSE, l.kinds.EXEC, l.kinds.EXIT, l.kinds.FORK];
    const addrs = [
      { family: 2, a: v4(127, 0, 0, 1), b: v4(10, 0, rnd(256), 9) },
      { family: 10, a: mapped(192, 168, 1, rnd(256)), b: mapped(127, 0, 0, 1) },
      { family: 10, a: v6("20010db8000000000000000000000001"), b: v6("1") },
      { family: 0, a: v4(0, 0, 0, 0), b: v4(0, 0, 0, 0) },
    ];
    const comms = ["node", "wrk", "python3", "a-fifteen-chars", "nginx: worker"];
    const recs: Rec[] = [];
    for (let i = 0; i < 300; i++) {
      const ad = addrs[rnd(addrs.length)];
      recs.push({
        kind: kinds[rnd(kinds.length)], ts: 1_000_000_000_000n + BigInt(rnd(1e9)), conn: (BigInt(rnd(2 ** 31)) << 32n) | BigInt(rnd(2 ** 31)),
        prevFirst: BigInt(rnd(1e9)), prevLast: BigInt(rnd(1e9)), prevBytes: BigInt(rnd(2 ** 31)) * 3n,
        pid: 100 + rnd(3), tid: 100 + rnd(5), seq: rnd(2 ** 31) * 2, bytes: rnd(100_000),
        flags: rnd(2) ? l.flags.FIN : rnd(2) ? l.flags.TRUNCATED : 0, dir: [l.dirs.SEND, l.dirs.RECV, l.dirs.NONE][rnd(3)],
        role: [l.roles.CLIENT, l.roles.SERVER, l.roles.UNKNOWN][rnd(3)], family: ad.family, laddr: ad.a, raddr: ad.b,
        lport: rnd(65536), rport: rnd(65536), aux: rnd(1000), comm: comms[rnd(comms.length)],
        payload: rnd(3) === 0 ? "" : `GET /${i} HTTP/1.1\r\n\r\n`,
      });
    }
    const { arena, used } = arenaOf(recs);
    const want = viaCopy(arena, used);
    expect(want).toHaveLength(300);
    expect(viaCursor(arena, used)).toEqual(want);
  });

  it("gives connId's low 53 bits and top 11 as numbers (connKey, connTop)", () => {
    const ids = [0n, 1n, (1n << 53n) - 1n, 1n << 53n, (1n << 64n) - 1n, 0xfedcba9876543210n, 0x0020000000000001n];
    const base = { kind: l.kinds.DATA, ts: 1n, pid: 5, tid: 5, seq: 0, bytes: 1, dir: l.dirs.SEND, role: l.roles.CLIENT, family: 2, laddr: v4(127, 0, 0, 1), raddr: v4(127, 0, 0, 2), lport: 1, rport: 2, payload: "x", comm: "x" };
    const { arena, used } = arenaOf(ids.map((conn) => ({ ...base, conn })));
    const got: [bigint, number | undefined, number | undefined][] = [];
    createDecoder(l).forEachRecord(arena, used, (r) => void got.push([r.connId, r.connKey, r.connTop]));
    expect(got).toEqual(ids.map((id) => [id, Number(id & ((1n << 53n) - 1n)), Number(id >> 53n)]));
  });

  it("gives a thread's new name after it changes (the name cache compares the bytes)", () => {
    const base = { kind: l.kinds.DATA, ts: 1n, conn: 1n, pid: 5, tid: 5, seq: 0, bytes: 1, dir: l.dirs.SEND, role: l.roles.CLIENT, family: 2, laddr: v4(127, 0, 0, 1), raddr: v4(127, 0, 0, 2), lport: 1, rport: 2, payload: "x" };
    const { arena, used } = arenaOf([{ ...base, comm: "before" }, { ...base, comm: "after" }, { ...base, comm: "afterwards" }, { ...base, comm: "after" }]);
    expect(viaCursor(arena, used).map((r) => r.comm)).toEqual(["before", "after", "afterwards", "after"]);
    expect(viaCursor(arena, used).map((r) => [r.localIp, r.remoteIp])).toEqual(new Array(4).fill(["127.0.0.1", "127.0.0.2"]));
  });

  it("throws on a frame that overruns the arena, after the frames before it", () => {
    const base = { kind: l.kinds.DATA, ts: 1n, conn: 1n, pid: 5, tid: 5, seq: 0, bytes: 1, dir: l.dirs.SEND, role: l.roles.CLIENT, family: 2, laddr: v4(127, 0, 0, 1), raddr: v4(127, 0, 0, 2), lport: 1, rport: 2, payload: "abc", comm: "x" };
    const { arena, used } = arenaOf([base, base]);
    const seen: string[] = [];
    expect(() => createDecoder(l).forEachRecord(arena, used - 8, (r) => seen.push(r.payload.toString()))).toThrow(/overruns/);
    expect(seen).toEqual(["abc"]);
  });
});
