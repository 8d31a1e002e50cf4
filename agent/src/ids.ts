// Span ids and thread trace ids: 64-bit values from the CSPRNG as 16 lower-case hex digits.
//
// Why a CSPRNG and not a counter or Math.random: ids must never repeat across agent restarts
// or hosts (the seed repeated its span-id sequence after a restart: reference/datakit.md §9.15),
// and the linker trusts them as unique keys. Random bytes are drawn in blocks so that one
// getRandomValues call serves many ids (one call per id costs ~1 µs; per block it is noise).
import { webcrypto } from "node:crypto";

const BLOCK_IDS = 256;
const pool = new Uint8Array(BLOCK_IDS * 8);
let next = BLOCK_IDS; // empty: the first call fills the pool

const HEX: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** A fresh random 64-bit id: 16 lower-case hex digits, never all zero. */
export function randomId64(): string {
  for (;;) {
    if (next === BLOCK_IDS) {
      webcrypto.getRandomValues(pool);
      next = 0;
    }
    const at = next++ * 8;
    let hex = "";
    let any = 0;
    for (let i = at; i < at + 8; i++) {
      hex += HEX[pool[i]];
      any |= pool[i];
    }
    if (any !== 0) return hex; // all zero means "no id" on the wire: draw again (p = 2^-64)
  }
}
