// Fixed-size records exchanged with the host (JS glue). Offsets and sizes are exported through
// `layout()` in index.ts and read by src/linker/engine.ts at start-up: never copied by hand.
// All multi-byte fields are little-endian (WebAssembly's byte order).

// ---- Input span record: one per eSpan, written by the host. ----
export const IN_SPAN_ID: u32 = 0; // u64
export const IN_KEY: u32 = 8; // u64: req_seq | resp_seq << 32
export const IN_TID: u32 = 16; // u64: thread_trace_id (valid when IN_F_HAS_TID)
export const IN_START: u32 = 24; // u64: start_ns
export const IN_ARRIVAL: u32 = 32; // i64: arrival time at the linker, ms
export const IN_APP_HI: u32 = 40; // u64: app trace id, high half
export const IN_APP_LO: u32 = 48; // u64: app trace id, low half
export const IN_APP_PARENT: u32 = 56; // u64: app parent span id
export const IN_REF: u32 = 64; // u32: the host's handle, echoed in the output
export const IN_FLAGS: u32 = 68; // u32: IN_F_*
export const IN_SIZE: u32 = 72;

export const IN_F_ENTRY: u32 = 1;
export const IN_F_HAS_TID: u32 = 2;
export const IN_F_APP_TRACE: u32 = 4;
export const IN_F_APP_PARENT: u32 = 8;
export const IN_F_HAS_SAMPLED: u32 = 16;
export const IN_F_SAMPLED: u32 = 32;

// ---- Output record: one per decided span. ----
export const OUT_SPAN_ID: u32 = 0; // u64
export const OUT_TRACE_HI: u32 = 8; // u64
export const OUT_TRACE_LO: u32 = 16; // u64
export const OUT_PARENT: u32 = 24; // u64 (0: root)
export const OUT_REF: u32 = 32; // u32
export const OUT_FLAGS: u32 = 36; // u32: OUT_F_*
export const OUT_SIZE: u32 = 40;

export const OUT_F_SAMPLED: u32 = 1;
export const OUT_F_HAS_PARENT: u32 = 2;

// ---- Message between shards: a header and seven u64 words. ----
export const MSG_DEST: u32 = 0; // u32: destination shard
export const MSG_TYPE: u32 = 4; // u32: MSG_*
export const MSG_A: u32 = 8;
export const MSG_B: u32 = 16;
export const MSG_C: u32 = 24;
export const MSG_D: u32 = 32;
export const MSG_E: u32 = 40;
export const MSG_F: u32 = 48;
export const MSG_G: u32 = 56;
export const MSG_SIZE: u32 = 64;

/** A span's thread registration at its thread shard: a=span_id b=key c=tid d=arrival e=kind flags. */
export const MSG_REG_THREAD: u32 = 1;
/** To a member's home: a=member span_id b=member key c=parent span_id. */
export const MSG_LINK: u32 = 2;
/** To an owner's thread shard: a=owner span_id b=tid c=trace hi d=trace lo e=sampled. */
export const MSG_OWNER_DECIDED: u32 = 3;
/** To a span's home: a=span_id b=key c=trace hi d=trace lo e=sampled. */
export const MSG_DECIDED: u32 = 4;
/** To a span's home: a=span_id b=key, c..g = a candidate app-context carrier (see CARRIER_*). */
export const MSG_SUMMARY_HOME: u32 = 5;
/** To a span's stub at its thread shard: a=span_id b=tid, c..g = carrier. */
export const MSG_SUMMARY_STUB: u32 = 6;
// Carrier words in a summary message: c=start_ns d=carrier span_id e=app hi f=app lo
// g=depth (low 32 bits) | app flags (high 32 bits).
