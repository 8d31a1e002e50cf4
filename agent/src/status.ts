// The periodic one-line status on stderr: throughput since the last line, the queue, what was
// lost, what could not be linked.
import type { AgentStats } from "./pipeline.ts";

export function createStatusLine(): (s: AgentStats, nowMs?: number) => string {
  let lastSpans = 0;
  let lastMs = Date.now();
  return (s, nowMs = Date.now()) => {
    const spans = s.link.entries + s.link.exits;
    const rate = ((spans - lastSpans) * 1000) / Math.max(1, nowMs - lastMs);
    lastSpans = spans;
    lastMs = nowMs;
    const parts = [
      `${rate.toFixed(1)} spans/s`,
      `spans ${spans} (entry ${s.link.entries}, exit ${s.link.exits})`,
      `conns ${s.assemble.conns}`,
      `traced processes ${s.processes.processes_traced}`,
    ];
    if (s.ship) {
      parts.push(`sent ${s.ship.sent}`, `queue ${s.ship.memory_spans + s.ship.pending} mem / ${s.ship.disk_spans} disk`);
      parts.push(`dropped ${s.ship.dropped}`, `rejected ${s.ship.rejected}`, `retries ${s.ship.retries}`);
    }
    parts.push(
      `unlinked_ambiguous ${s.link.unlinked_ambiguous}`,
      `capture drops ${s.capture.drops}`,
    );
    return parts.join(", ");
  };
}
