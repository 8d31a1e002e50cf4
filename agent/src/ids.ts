// Span ids and thread trace ids: 64-bit values from the CSPRNG as 16 lower-case hex digits.
//
// Why a CSPRNG and not a counter or Math.random: ids must never repeat across agent restarts
// or hosts (the seed repeated its span-id sequence after a restart: reference/datakit.md §9.15),
// and the linker trusts them as unique keys. Random bytes are drawn in blocks so that one
// getRandomValues call serves many ids (a call costs ~30 µs: per id of a 4096-id block, 8 ns),
// and each block is written as hex once: an id is a 16-character slice of that text, a flat
// string (an id built by concatenation was a rope of 8 pieces that JSON.stringify flattened).
import { webcrypto } from "node:crypto";

const BLOCK_IDS = 4096; // 32 KB a call: a call costs ~30 µs whether it fills 2 KB or 32 KB
const pool = Buffer.alloc(BLOCK_IDS * 8);
let hex = "";
let next = BLOCK_IDS; // empty: the first call fills the pool

/** The id randomId64 returned last as two 32-bit numbers, its first 8 hex digits and its last
 * 8: the JSON writer's native encoder writes ids from these (ship/span-json.ts), not from the
 * string. */
export const lastId = { hi: 0, lo: 0 };

/** A fresh random 64-bit id: 16 lower-case hex digits, never all zero. */
export function randomId64(): string {
  for (;;) {
    if (next === BLOCK_IDS) {
      webcrypto.getRandomValues(pool);
      hex = pool.toString("hex");
      next = 0;
    }
    const i = next++;
    // All zero means "no id" on the wire: draw again (p = 2^-64). Told by the bytes: comparing
    // the id string with "0000000000000000" was a call into V8's runtime per id (two strings
    // of one length).
    const hi = pool.readUInt32BE(i * 8);
    const lo = pool.readUInt32BE(i * 8 + 4);
    if (hi === 0 && lo === 0) continue;
    lastId.hi = hi;
    lastId.lo = lo;
    return hex.slice(i * 16, i * 16 + 16);
  }
}
