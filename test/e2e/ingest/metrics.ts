/** /metrics, parsed: each metric summed over its labels. */
export async function metrics(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-z_]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return out;
}

/** Resolves once every received span is decided, exported and released by the shards. */
export async function settled(url: string, timeoutMs = 30_000, released = true): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await metrics(url);
    const decided = (m.espan_spans_linked_total ?? 0) >= (m.espan_spans_received_total ?? 0) - (m.espan_spans_duplicate_total ?? 0);
    if (decided && (m.espan_export_backlog_spans ?? 0) === 0 && (m.espan_pending_spans ?? 0) === 0 && (!released || (m.espan_held_spans ?? 0) === 0)) return m;
    if (Date.now() > deadline) throw new Error(`ingest did not settle: ${JSON.stringify(m)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
