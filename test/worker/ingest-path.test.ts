/**
 * The pieces of the ingest's path, inside workerd: bodies an earlier version logged as they came
 * (spansOfText), the shard log's done bitmaps beside the log, the trace
 * store's flat-row writes (idempotent, summarised, and earlier layouts migrated), and the
 * export's BigInt-free times and linked JSON built around the span's own.
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ESpan } from "../../contract/espan.ts";
import type { Scenario } from "../scenarios.case.ts";
// Inside workerd there is no file system: the scenario comes in as a module.
import chainScenario from "../../../shared/scenarios/chain-3-hop.json";
import { hrTimeOf, readableOf, ResourceCache } from "../../src/export/otlp-span.ts";
import { parseBatch, spansOfText } from "../../src/ingest/decode.ts";
import { linkedJson, startMs } from "../../src/linker/shard.ts";
import { LOG_BATCH, LOG_BATCH_DOC, LOG_BATCH_NDJSON, ShardLog } from "../../src/linker/shard-log.ts";
import { SpanIndex } from "../../src/store/span-index.ts";
import { STORE_COLUMNS, type TraceStore } from "../../src/store/trace-store.ts";
import { bindings } from "./helpers.ts";

const chain = (chainScenario as unknown as Scenario).spans as ESpan[];

describe("a body logged as it came (by an earlier version)", () => {
  it("gives the spans the full parser read from it back, blank lines and other keys too", () => {
    for (const ndjson of [false, true]) {
      const text = ndjson ? "\n" + chain.map((s) => JSON.stringify(s)).join("\n\n") + "\n" : JSON.stringify({ spans: chain, other: 1 });
      const { spans } = parseBatch(text, ndjson);
      expect(spans).toHaveLength(chain.length);
      expect(spansOfText(text, ndjson)).toEqual(spans);
    }
  });
});

describe("the shard log", () => {
  it("keeps done bitmaps beside the log (a legacy bitmap in the log row still counts), and truncation drops both", async () => {
    const stub = bindings.LINKER_SHARD.get(bindings.LINKER_SHARD.idFromName("log-test"));
    await runInDurableObject(stub, (_instance, state) => {
      const sql = state.storage.sql;
      const log = new ShardLog(sql);
      const a = log.appendBatch(100, JSON.stringify(chain), chain.length, LOG_BATCH);
      const b = log.appendBatch(200, JSON.stringify({ spans: chain }), chain.length, LOG_BATCH_DOC);
      const c = log.appendBatch(300, chain.map((s) => JSON.stringify(s)).join("\n"), chain.length, LOG_BATCH_NDJSON);
      // A row from before log_done existed: its bitmap in the log row.
      sql.exec("UPDATE log SET done = ? WHERE seq = ?", new Uint8Array([0b101]), c);
      log.setDone(a, new Uint8Array([0b1]));
      log.setDone(a, new Uint8Array([0b11]));
      const rows = [...log.rows()];
      expect(rows.map((r) => [r.seq, r.kind, r.n])).toEqual([[a, LOG_BATCH, chain.length], [b, LOG_BATCH_DOC, chain.length], [c, LOG_BATCH_NDJSON, chain.length]]);
      expect([...new Uint8Array(rows[0].done!)]).toEqual([0b11]);
      expect(rows[1].done).toBeNull();
      expect([...new Uint8Array(rows[2].done!)]).toEqual([0b101]);
      log.setDone(c, new Uint8Array([0b111]));
      expect([...new Uint8Array([...log.rows()][2].done!)]).toEqual([0b111]);
      expect(log.truncate(250, (seq) => seq !== b)).toBe(1); // a is old and done; b is not done
      expect([...log.seqs()].sort()).toEqual([b, c].sort());
      expect(sql.exec("SELECT seq FROM log_done ORDER BY seq").toArray().map((r) => r.seq)).toEqual([c]);
      // At most `limit` rows a step; the seqs dropped are reported.
      const msgs = [log.appendMessages(10, new Uint8Array(8), 1), log.appendMessages(20, new Uint8Array(8), 1)];
      const dropped: number[] = [];
      expect(log.truncate(250, () => false, 1, dropped)).toBe(1);
      expect(log.truncate(250, () => false, 1, dropped)).toBe(1);
      expect(log.truncate(250, () => false, 1, dropped)).toBe(0);
      expect(dropped).toEqual(msgs);
    });
  });
});

describe("the trace store", () => {
  const rowsOf = (spans: { trace_id: string; span_id: string; parent_id: string; service: string; start_ns: string; operation?: string }[]) =>
    spans.flatMap((s) => [s.trace_id, s.span_id, s.parent_id, s.service, startMs(s.start_ns), s.operation ?? "", JSON.stringify(s)]);
  const trace = "0199c82cc031e9f96a938cee06ec4f89";
  const linked = chain.map((s, i) => ({ ...s, trace_id: trace, parent_id: i === 0 ? "" : chain[i - 1].span_id }));
  /** The summary of the whole of `linked`: its earliest span stands for it. */
  const first = linked.reduce((a, s) => (BigInt(s.start_ns) < BigInt(a.start_ns) ? s : a));
  const linkedSummary = {
    trace_id: trace, start_ms: startMs(first.start_ns), root_service: first.service, root_operation: first.operation ?? "",
    span_count: linked.length, services: [...new Set(linked.map((s) => s.service))].sort(),
  };

  it("stores flat rows once (a second write of the same spans adds nothing) and summarises each trace", async () => {
    const store = bindings.TRACE_STORE.get(bindings.TRACE_STORE.idFromName("store-test-rows"));
    expect(STORE_COLUMNS).toHaveLength(7);
    expect(await store.putSpans(rowsOf(linked.slice(0, 3)))).toBe(3);
    expect(await store.putSpans(rowsOf(linked))).toBe(linked.length - 3);
    expect(await store.putSpans(rowsOf(linked))).toBe(0);
    const got = (await store.getTrace(trace)) as unknown as ESpan[];
    expect(got.map((s) => s.span_id).sort()).toEqual(chain.map((s) => s.span_id).sort());
    expect((await store.getSpan(chain[1].span_id)) as unknown).toEqual(linked[1]);
    const [summary] = await store.listTraces({ limit: 10 });
    expect(summary).toEqual(linkedSummary);
  });

  it("counts a span repeated inside one write once, beside one stored before", async () => {
    const store = bindings.TRACE_STORE.get(bindings.TRACE_STORE.idFromName("store-test-repeat"));
    expect(await store.putSpans(rowsOf([linked[0]]))).toBe(1);
    expect(await store.putSpans(rowsOf([linked[0], linked[1], linked[1], linked[2]]))).toBe(2);
    const [summary] = await store.listTraces({ limit: 10 });
    expect(summary.span_count).toBe(3);
  });

  it("a write that fails part-way keeps what it stored in its traces' summaries, and its retry adds nothing twice", async () => {
    const stub = bindings.TRACE_STORE.get(bindings.TRACE_STORE.idFromName("store-test-failed-write"));
    expect(await stub.putSpans(rowsOf(linked.slice(0, 1)))).toBe(1);
    await runInDurableObject(stub, async (instance: TraceStore) => {
      // The spans are stored, then the summary step throws (as a full disk would).
      const store = instance as unknown as { summarise(...a: unknown[]): void };
      const summarise = store.summarise;
      store.summarise = () => {
        throw new Error("disk full");
      };
      await expect(instance.putSpans(rowsOf(linked))).rejects.toThrow("disk full");
      store.summarise = summarise;
    });
    expect(await stub.listTraces({ limit: 10 })).toEqual([linkedSummary]);
    // The caller retries the write: every span was stored before, nothing changes.
    expect(await stub.putSpans(rowsOf(linked))).toBe(0);
    expect(await stub.listTraces({ limit: 10 })).toEqual([linkedSummary]);
  });

  it("finds spans by id in sorted segments and in the rows not indexed yet, through retention and an emptied table", async () => {
    const stub = bindings.TRACE_STORE.get(bindings.TRACE_STORE.idFromName("store-test-span-index"));
    await runInDurableObject(stub, (_instance: TraceStore, state) => {
      const sql = state.storage.sql;
      const index = new SpanIndex(sql, { stepRows: 4, segmentRows: 8 });
      const idOf = (i: number) => ((i * 0x9e3779b1) >>> 0).toString(16).padStart(16, "f");
      const add = (from: number, to: number) => {
        for (let i = from; i < to; i++) sql.exec("INSERT INTO stored_spans VALUES (?, ?, '', 's', 0, '', ?, 0)", `t${i}`, idOf(i), `{"i":${i}}`);
        index.catchUp();
      };
      const found = (i: number) => index.find(idOf(i));
      add(0, 13);
      add(13, 30);
      // 28 rows indexed in steps of 4: segments from rows 1, 9, 17, 25; rows 29 and 30 not yet.
      expect(sql.exec("SELECT segment, last_row FROM span_segments ORDER BY segment").toArray()).toEqual([
        { segment: 1, last_row: 8 }, { segment: 9, last_row: 16 }, { segment: 17, last_row: 24 }, { segment: 25, last_row: 28 }]);
      for (let i = 0; i < 30; i++) expect(found(i)).toBe(`{"i":${i}}`);
      expect(index.find("0123456789abcdef")).toBeNull();
      // Retention drops the oldest rows: their segment goes, the others stay.
      sql.exec("DELETE FROM stored_spans WHERE rowid <= 12");
      index.prune();
      expect(sql.exec("SELECT segment FROM span_segments ORDER BY segment").toArray().map((r) => r.segment)).toEqual([9, 17, 25]);
      expect(found(3)).toBeNull();
      expect(found(11)).toBeNull();
      expect(found(12)).toBe('{"i":12}');
      // All gone: rowids start from 1 again, and the index with them.
      sql.exec("DELETE FROM stored_spans");
      index.prune();
      add(100, 106);
      for (let i = 100; i < 106; i++) expect(found(i)).toBe(`{"i":${i}}`);
      expect(sql.exec("SELECT count(*) AS n FROM span_keys").one().n).toBe(4);
    });
  });

  it("indexes rows from the span ids the writer noted, and reads the rows back after a gap", async () => {
    const stub = bindings.TRACE_STORE.get(bindings.TRACE_STORE.idFromName("store-test-span-index-noted"));
    await runInDurableObject(stub, (_instance: TraceStore, state) => {
      const sql = state.storage.sql;
      sql.exec("DELETE FROM span_keys");
      sql.exec("DELETE FROM span_segments");
      const index = new SpanIndex(sql, { stepRows: 4, segmentRows: 8 });
      const idOf = (i: number) => ((i * 0x9e3779b1) >>> 0).toString(16).padStart(16, "e");
      const add = (from: number, to: number, noted = (_i: number) => true) => {
        for (let i = from; i < to; i++) {
          sql.exec("INSERT INTO stored_spans VALUES (?, ?, '', 's', 0, '', ?, 0)", `t${i}`, idOf(i), `{"i":${i}}`);
          const row = sql.exec<{ r: number }>("SELECT last_insert_rowid() AS r").one().r;
          if (noted(i)) index.noteRow(idOf(i), row);
        }
        index.catchUp();
      };
      add(0, 9);
      add(9, 23, (i) => i !== 14); // a gap: the step over it reads its rows back
      add(23, 30);
      const keys = sql.exec("SELECT segment, span_id, row FROM span_keys ORDER BY segment, span_id, row").toArray();
      // What reading every row back gives: each row's span id under the segment of its step.
      const segments = sql.exec<{ segment: number; last_row: number }>("SELECT segment, last_row FROM span_segments ORDER BY segment").toArray();
      expect(segments.at(-1)!.last_row).toBe(28);
      const expected = sql.exec<{ span_id: string; row: number }>("SELECT span_id, rowid AS row FROM stored_spans WHERE rowid <= 28").toArray()
        .map((r) => ({ segment: segments.filter((g) => g.segment <= r.row).at(-1)!.segment, span_id: r.span_id, row: r.row }))
        .sort((a, b) => a.segment - b.segment || (a.span_id < b.span_id ? -1 : a.span_id > b.span_id ? 1 : a.row - b.row));
      expect(keys).toEqual(expected);
      for (let i = 0; i < 30; i++) expect(index.find(idOf(i))).toBe(`{"i":${i}}`);
    });
  });

  it("moves spans of the first layout (table spans) into the new one", async () => {
    const stub = bindings.TRACE_STORE.get(bindings.TRACE_STORE.idFromName("store-test-migrate"));
    await runInDurableObject(stub, (instance: TraceStore, state) => {
      const sql = state.storage.sql;
      sql.exec(`CREATE TABLE spans (trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_id TEXT NOT NULL, service TEXT NOT NULL,
        start_ms INTEGER NOT NULL, stored_at INTEGER NOT NULL, operation TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (trace_id, span_id)) WITHOUT ROWID`);
      for (const s of linked) sql.exec("INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?)", s.trace_id, s.span_id, s.parent_id, s.service, startMs(s.start_ns), 1, s.operation ?? "", JSON.stringify(s));
      (instance as unknown as { migrate(): void }).migrate();
      expect(sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 'spans'").one().n).toBe(0);
    });
    expect(((await stub.getTrace(trace)) as unknown as ESpan[]).length).toBe(linked.length);
    expect((await stub.getSpan(chain[2].span_id)) as unknown).toEqual(linked[2]);
  });
  it("keys each trace's services by its summary row, and moves those of the earlier layout (by trace id) there", async () => {
    const stub = bindings.TRACE_STORE.get(bindings.TRACE_STORE.idFromName("store-test-services"));
    const other = "0199c82cc031e9f96a938cee06ec4f8a";
    // The second trace a second later (traces list newest first).
    const second = linked.map((s) => ({ ...s, trace_id: other, span_id: s.span_id.replace(/^./, "f"), start_ns: String(BigInt(s.start_ns) + 1_000_000_000n) }));
    await stub.putSpans(rowsOf(linked.slice(0, 2)));
    await stub.putSpans(rowsOf([...linked.slice(2), ...second]));
    const services = linkedSummary.services;
    const all = await stub.listTraces({ limit: 10 });
    expect(all.map((t) => t.trace_id)).toEqual([other, trace]);
    for (const t of all) expect(t.services).toEqual(services);
    const byService = await stub.listTraces({ service: linked[linked.length - 1].service, limit: 10 });
    expect(byService).toEqual(all);
    expect(await stub.listTraces({ service: "no-such-service", limit: 10 })).toEqual([]);
    await runInDurableObject(stub, (instance: TraceStore, state) => {
      const sql = state.storage.sql;
      // The earlier layout: services by trace id.
      sql.exec("CREATE TABLE trace_services (service TEXT NOT NULL, trace_id TEXT NOT NULL, PRIMARY KEY (service, trace_id)) WITHOUT ROWID");
      sql.exec("INSERT INTO trace_services SELECT s.service, t.trace_id FROM trace_service_rows s JOIN traces t ON t.rowid = s.trace_row");
      sql.exec("DELETE FROM trace_service_rows");
      (instance as unknown as { migrate(): void }).migrate();
      expect(sql.exec("SELECT count(*) AS n FROM sqlite_master WHERE name = 'trace_services'").one().n).toBe(0);
    });
    expect(await stub.listTraces({ limit: 10 })).toEqual(all);
    expect(await stub.listTraces({ service: linked[0].service, limit: 10 })).toEqual(all);
  });
});

describe("export", () => {
  it("times from the decimal string equal the BigInt arithmetic, carries included", () => {
    const cases: [string, number][] = [["1760000000999999999", 1], ["1760000000123456789", 2_876_543_211], ["999999999", 1], ["5", 0], ["18446744073709551615", 0], ["1760000000000000000", 123]];
    for (const [ns, dur] of cases) {
      const start = BigInt(ns);
      const end = start + BigInt(dur);
      expect(hrTimeOf(ns)).toEqual([Number(start / 1_000_000_000n), Number(start % 1_000_000_000n)]);
      expect(hrTimeOf(ns, dur)).toEqual([Number(end / 1_000_000_000n), Number(end % 1_000_000_000n)]);
    }
    const r = readableOf({ ...chain[0], duration_ns: 2_500_000_001 }, "ab".repeat(16), "", new ResourceCache());
    expect(r.duration).toEqual([2, 500_000_001]);
    expect(r.parentSpanContext).toBeUndefined();
  });

  it("linked JSON is the span with the linker's ids, whatever fields the span carries", () => {
    const r = { traceId: "cd".repeat(16), spanId: chain[0].span_id, parentId: "ef".repeat(8) };
    const want = (s: ESpan) => ({ ...s, trace_id: r.traceId, span_id: r.spanId, parent_id: r.parentId });
    expect(JSON.parse(linkedJson(chain[0], r))).toEqual(want(chain[0]));
    expect(linkedJson(chain[0], r).startsWith(`{"trace_id":"${r.traceId}",`)).toBe(true);
    const odd = { ...chain[0], trace_id: "not mine", parent_id: "nor this" } as ESpan;
    expect(JSON.parse(linkedJson(odd, r))).toEqual(want(odd));
    expect(JSON.parse(linkedJson(chain[0], { ...r, parentId: "" })).parent_id).toBe("");
    expect(startMs("1760000000123456789")).toBe(1760000000123);
    expect(startMs("999")).toBe(0);
  });
});
