// The addon's contract: errors that name the missing piece, the layout JS decodes with, stats,
// batching into one arena without losing records at the cut.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { layout, open } from "../../agent/native/index.js";
import { createDecoder, formatIp } from "../../agent/src/record.ts";
import { dataOf, startCapture, type Session } from "./helpers/capture.ts";
import { spawnGated } from "./helpers/process.ts";
import { helperPath } from "./helpers/servers.ts";

const indexUrl = new URL("../../agent/native/index.js", import.meta.url).href;

describe("layout and decoder", () => {
  it("matches bpf/record.h: 120 bytes, fields inside and not overlapping", () => {
    const l = layout();
    expect(l.recordSize).toBe(120);
    expect(l.littleEndian).toBe(true);
    const fields = Object.entries(l.fields).sort((a, b) => a[1].offset - b[1].offset);
    let end = 0;
    for (const [name, f] of fields) {
      expect(f.offset, name).toBeGreaterThanOrEqual(end);
      expect(f.offset % Math.min(f.size, 8), `${name} aligned`).toBe(0);
      end = f.offset + f.size;
    }
    expect(end).toBe(l.recordSize); // explicit padding: no hole at the end
  });

  it("decodes a framed arena written with the layout's offsets", () => {
    const l = layout();
    const payload = Buffer.from("GET / HTTP/1.1\r\n");
    const arena = Buffer.alloc(1024);
    const dv = new DataView(arena.buffer, arena.byteOffset, arena.byteLength);
    const len = l.recordSize + payload.length;
    dv.setUint32(0, len, true);
    const at = l.frameHeader;
    const f = l.fields;
    dv.setBigUint64(at + f.ts_ns.offset, 123456789n, true);
    dv.setBigUint64(at + f.conn_id.offset, 0xfeedn, true);
    dv.setUint32(at + f.pid.offset, 42, true);
    dv.setUint32(at + f.seq.offset, 0xfffffff0, true);
    dv.setUint32(at + f.bytes.offset, 99, true);
    dv.setUint16(at + f.cap_len.offset, payload.length, true);
    dv.setUint16(at + f.flags.offset, l.flags.FIN | l.flags.TRUNCATED, true);
    dv.setUint8(at + f.kind.offset, l.kinds.DATA);
    dv.setUint8(at + f.dir.offset, l.dirs.RECV);
    dv.setUint8(at + f.role.offset, l.roles.SERVER);
    dv.setUint8(at + f.family.offset, 10);
    dv.setUint16(at + f.lport.offset, 8080, true);
    arena[at + f.laddr.offset + 15] = 1; // ::1
    arena.write("python3", at + f.comm.offset, "latin1");
    payload.copy(arena, at + l.recordSize);
    const used = l.frameHeader + ((len + 7) & ~7);
    const [r, ...rest] = createDecoder(l).decodeArena(arena, used);
    expect(rest).toEqual([]);
    expect(r).toMatchObject({
      kind: "data", tsNs: 123456789n, connId: 0xfeedn, pid: 42, seq: 0xfffffff0, bytes: 99,
      fin: true, truncated: true, dir: "recv", role: "server", family: 6, localIp: "::1",
      localPort: 8080, comm: "python3",
    });
    expect(r.payload.toString()).toBe("GET / HTTP/1.1\r\n");
    expect(() => createDecoder(l).decodeArena(arena, used - 8)).toThrow(/overruns/);
  });
});

describe("address text", () => {
  const v6 = (hex: string) => Uint8Array.from(Buffer.from(hex.padStart(32, "0"), "hex"));
  it("writes IPv4, IPv6 (RFC 5952) and v4-mapped addresses", () => {
    expect(formatIp(2, Uint8Array.from([10, 1, 2, 3]))).toBe("10.1.2.3");
    expect(formatIp(10, v6("1"))).toBe("::1");
    expect(formatIp(10, v6("0"))).toBe("::");
    expect(formatIp(10, v6("20010db8000000000000000000000001"))).toBe("2001:db8::1");
    expect(formatIp(10, v6("00010000000000010000000000000001"))).toBe("1:0:0:1::1");
    expect(formatIp(10, v6("ffff7f000001"))).toBe("::ffff:127.0.0.1");
    expect(formatIp(0, v6("1"))).toBe("");
  });
});

describe("errors say what is missing", () => {
  it("rejects an unknown strategy", () => {
    expect(() => open({ strategy: "kprobe" as never })).toThrow(/strategy must be 'tp_btf', 'fd_lookup' or 'auto'/);
  });

  it("names the step and errno of a bad option", () => {
    try {
      open({ ringBytes: 12345 });
      expect.unreachable();
    } catch (e) {
      expect(e).toMatchObject({ code: "EINVAL", step: "configure ring buffer" });
      expect(String((e as Error).message)).toMatch(/power of 2/);
    }
  });

  // Runs `body` (with `m` = the addon module) in a child node and returns the error it threw.
  // `setup` runs first in a private mount namespace (unshare -m), so the tests can hide a
  // file from the addon without touching the machine.
  async function errorIn(body: string, opts: { setup?: string; uid?: number } = {}) {
    const code = `import(${JSON.stringify(indexUrl)}).then(async (m) => { try { ${body}; console.log("{}"); }
      catch (e) { console.log(JSON.stringify({ code: e.code, step: e.step, message: e.message })); } })`;
    const child = opts.setup
      ? spawn("unshare", ["-m", "sh", "-c", `${opts.setup} && exec "$0" -e "$1"`, process.execPath, code], { stdio: ["ignore", "pipe", "pipe"] })
      : spawn(process.execPath, ["-e", code], { uid: opts.uid, gid: opts.uid, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (out += d));
    await new Promise((r) => child.on("close", r));
    try {
      return JSON.parse(out.trim().split("\n").pop()!) as { code?: string; step?: string; message?: string };
    } catch {
      throw new Error(`child output: ${out}`);
    }
  }

  it("says 'not root' when run by another user", async () => {
    const err = await errorIn("m.open()", { uid: 65534 });
    expect(err).toMatchObject({ code: "EPERM", step: "check root" });
    expect(err.message).toMatch(/not root/);
  });

  it("says 'no BTF' without /sys/kernel/btf/vmlinux", async () => {
    const err = await errorIn("m.open()", { setup: "mount -t tmpfs none /sys/kernel/btf" });
    expect(err).toMatchObject({ code: "ENOENT", step: "check BTF" });
    expect(err.message).toMatch(/no BTF: \/sys\/kernel\/btf\/vmlinux is missing/);
  });

  it("names the absent tracepoint at attach", async () => {
    // Loaded with tracefs present, then tracefs hidden: libbpf cannot find the event ids.
    const err = await errorIn(
      `const c = m.open({ strategy: "fd_lookup" });
       (await import("node:child_process")).execSync(
         "mount -t tmpfs none /sys/kernel/tracing && mount -t tmpfs none /sys/kernel/debug");
       c.attach()`,
      { setup: "true" },
    );
    expect(err).toMatchObject({ code: "ENOENT", step: "attach handle_enter_read" });
    expect(err.message).toMatch(/tracepoint syscalls\/sys_enter_read is absent/);
  });

  it("says 'libbpf missing' when libbpf.so.1 cannot be loaded", async () => {
    const ldd = execFileSync("ldd", [fileURLToPath(new URL("../../agent/native/build/Release/espan_capture.node", import.meta.url))]);
    const lib = /libbpf\.so\.1 => (\S+)/.exec(ldd.toString())![1];
    const err = await errorIn("m.layout()", { setup: `mount --bind /dev/null ${lib}` });
    expect(err.code).toBe("ESPAN_NATIVE_LOAD");
    expect(err.message).toMatch(/libbpf missing/);
  });
});

describe("strategy choice", () => {
  it("'auto' loads tp_btf in a process a profiler interrupts with signals", () => {
    // node --cpu-prof sends SIGPROF to the main thread every interval; the verifier stops with
    // EAGAIN on a pending signal, and auto used to fall back to fd_lookup under a profiler.
    const dir = execFileSync("mktemp", ["-d"]).toString().trim();
    const code = `import(${JSON.stringify(indexUrl)}).then((m) => { const c = m.open({ strategy: "auto" }); console.log(c.strategy()); c.close(); })`;
    const out = execFileSync(process.execPath, ["--cpu-prof", "--cpu-prof-interval", "100", "--cpu-prof-dir", dir, "-e", code]);
    execFileSync("rm", ["-rf", dir]);
    expect(out.toString().trim()).toBe("tp_btf");
  });

  it("'auto' says why it fell back to fd_lookup", () => {
    // The kernel's BTF with the sock_send_length tracepoint's type renamed, mounted over
    // /sys/kernel/btf/vmlinux in a private mount namespace: to the loader the tracepoint is
    // absent (a kernel before 6.3), and fd_lookup still finds every type it relocates.
    const dir = mkdtempSync(join(tmpdir(), "espan-btf-"));
    const fake = join(dir, "vmlinux");
    const btf = readFileSync("/sys/kernel/btf/vmlinux");
    const name = Buffer.from("btf_trace_sock_send_length\0");
    const at = btf.indexOf(name);
    expect(at).toBeGreaterThan(0);
    btf[at + name.length - 2] = 0x58; // "btf_trace_sock_send_lengtX"
    writeFileSync(fake, btf);
    const code = `import(${JSON.stringify(indexUrl)}).then((m) => { const c = m.open({ strategy: "auto" }); const s = c.stats();
      console.log(JSON.stringify({ strategy: s.strategy, why: s.strategyFallback })); c.close(); })`;
    try {
      const out = execFileSync("unshare", ["-m", "sh", "-c", `mount --bind ${fake} /sys/kernel/btf/vmlinux && exec "$0" -e "$1"`, process.execPath, code]);
      const got = JSON.parse(out.toString().trim()) as { strategy: string; why: string | null };
      expect(got.strategy).toBe("fd_lookup");
      expect(got.why).toMatch(/tracepoint sock\/sock_send_length is absent from the kernel BTF/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("stats and batching", () => {
  let session: Session;

  afterAll(() => session?.close());

  it("drains a burst in arena-sized batches without losing a record at the cut", async () => {
    // everyChunk: a record per send/recv, 4 KB each: ~6000 records, ~25 MB through 4 MiB arenas.
    session = startCapture({ strategy: "auto", captureBytes: 4096, everyChunk: true, runStats: true, ringBytes: 64 << 20 });
    const blast = spawnGated("python3", [helperPath("blast.py"), "3000", "4096"]);
    session.cap.addPid(blast.pid);
    blast.release();
    const out = await blast.exited;
    expect(out.stdout.trim()).toBe(String(3000 * 4096));
    const sentBytes = () => dataOf(session.records, blast.pid).filter((r) => r.dir === "send").reduce((n, r) => n + r.bytes, 0);
    await session.waitFor(() => sentBytes() === 3000 * 4096, 10_000);
    const stats = session.cap.stats();
    expect(stats.drops).toBe(0);
    expect(stats.arenaFull).toBeGreaterThan(0);
    expect(stats.records).toBe(session.records.length);
    // Batched wake-ups: the kernel woke the consumer per wakeupBytes (1 MiB) crossed, never
    // per record (a wake-up per record costs ~30% of the traced program's throughput).
    expect(stats.pollWakeups).toBeLessThan(stats.records / 10);
    // Consecutive sends continue each other's seq: no record missing, none duplicated.
    const sends = dataOf(session.records, blast.pid).filter((r) => r.dir === "send");
    for (let i = 1; i < sends.length; i++) {
      expect((sends[i].seq - sends[i - 1].seq) >>> 0).toBe(sends[i - 1].bytes);
    }
    expect(sends.filter((r) => (r.flags & layout().flags.CONT) === 0).length).toBe(1); // one flip
  });

  it("reports per-program BPF run time and ring usage", () => {
    const stats = session.cap.stats();
    expect(stats.runStats).toBe(true);
    expect(stats.strategy).toBe("tp_btf");
    expect(stats.strategyFallback).toBeNull(); // auto loaded tp_btf: nothing to explain
    expect(stats.ringSize).toBe(64 << 20);
    expect(stats.ringUsed).toBeGreaterThanOrEqual(0);
    expect(stats.ringUsed).toBeLessThanOrEqual(stats.ringSize);
    const names = stats.programs.map((p) => p.name);
    expect(names).toContain("handle_sock_send");
    // tp_btf reads the syscall's arguments at the socket tracepoint: no syscall tracepoint is
    // enabled (that would slow every syscall on the host).
    expect(names.filter((n) => /^handle_(enter|exit)_/.test(n))).toEqual([]);
    expect(stats.programs.every((p) => p.verifiedInsns > 0)).toBe(true);
    const busy = stats.programs.filter((p) => p.runCount > 0);
    expect(busy.length).toBeGreaterThan(2);
    expect(busy.every((p) => p.runTimeNs > 0)).toBe(true);
  });

  it("detach() stops the records and attach() brings them back, on the same capture", async () => {
    const blastOnce = async () => {
      const g = spawnGated("python3", [helperPath("blast.py"), "20", "512"]);
      session.cap.addPid(g.pid);
      g.release();
      expect((await g.exited).stdout.trim()).toBe(String(20 * 512));
      return g.pid;
    };
    session.cap.detach();
    expect(session.cap.stats().attached).toBe(false);
    const unseen = await blastOnce();
    await session.waitFor(() => false, 300); // drains for a while: nothing of it may come
    expect(dataOf(session.records, unseen)).toEqual([]);
    session.cap.attach();
    expect(session.cap.stats().attached).toBe(true);
    const seen = await blastOnce();
    const sent = () => dataOf(session.records, seen).filter((r) => r.dir === "send").reduce((n, r) => n + r.bytes, 0);
    expect(await session.waitFor(() => sent() === 20 * 512)).toBe(true);
  });

  it("can be closed from inside its own callback", async () => {
    const cap = open({ strategy: "auto" });
    cap.attach();
    let calls = 0;
    cap.start(() => {
      calls++;
      cap.close();
    }, 5);
    const sh = spawnGated("sh", ["-c", "exit 0"]); // an exec + exit record for the callback
    sh.release();
    await sh.exited;
    const end = Date.now() + 3000;
    while (calls === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
    expect(calls).toBe(1);
    expect(() => cap.stats()).toThrow(/closed/);
    cap.close(); // twice is fine
  });
});
