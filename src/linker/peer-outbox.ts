/**
 * Messages for other shards, sent in order per destination (a shard must hear of a span before
 * any decision about it), batched (one RPC carries everything queued: an RPC costs 20–50 µs),
 * and kept until the peer has logged them; a failed send is retried.
 */
export type SendFn = (dest: number, messages: Uint8Array) => Promise<void>;

export class PeerOutbox {
  private readonly queues = new Map<number, Uint8Array[]>();
  private readonly busy = new Set<number>();
  private failedAt = 0;
  sent = 0;
  failures = 0;

  constructor(private readonly sendFn: SendFn) {}

  push(dest: number, messages: Uint8Array): void {
    let q = this.queues.get(dest);
    if (!q) this.queues.set(dest, (q = []));
    q.push(messages);
    void this.drain(dest);
  }

  /** Sends what is queued for every destination (after a failure: the retry). */
  retryAll(): void {
    for (const dest of this.queues.keys()) void this.drain(dest);
  }

  get pending(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** When a failed send should be tried again (0: nothing failed). */
  get retryAt(): number {
    return this.pending > 0 && this.failedAt > 0 ? this.failedAt + 1000 : 0;
  }

  /** Resolves when nothing is queued or being sent. */
  async idle(): Promise<void> {
    while (this.busy.size > 0) await new Promise((r) => setTimeout(r, 1));
  }

  private async drain(dest: number): Promise<void> {
    if (this.busy.has(dest)) return;
    this.busy.add(dest);
    try {
      const q = this.queues.get(dest)!;
      while (q.length > 0) {
        const parts = q.splice(0, q.length);
        const batch = parts.length === 1 ? parts[0] : concat(parts);
        try {
          await this.sendFn(dest, batch);
          this.sent += batch.byteLength;
          this.failedAt = 0;
        } catch {
          q.unshift(batch);
          this.failures++;
          this.failedAt = Date.now();
          return;
        }
      }
    } finally {
      this.busy.delete(dest);
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}
