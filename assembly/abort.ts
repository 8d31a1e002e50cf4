// The engine never throws on bad input (it counts it); an abort is a bug, reported by the host.
@external("env", "engine_abort")
declare function hostAbort(code: u32, line: u32): void;

export function engineAbort(message: usize, fileName: usize, line: u32, column: u32): void {
  hostAbort(0, line);
  unreachable();
}
