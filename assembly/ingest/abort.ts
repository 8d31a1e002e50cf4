// The parser never throws on bad input (it declines it); an abort is a bug, reported by the host.
@external("env", "ingest_abort")
declare function hostAbort(line: u32): void;

export function ingestAbort(message: usize, fileName: usize, line: u32, column: u32): void {
  hostAbort(line);
  unreachable();
}
