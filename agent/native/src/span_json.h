// SPDX-License-Identifier: Apache-2.0
/*
 * The JSON of an agent's eSpan from numbers JS decided (agent/src/ship/span-json.ts), around
 * two runs of fields JS wrote once and remembered as bytes (host .. dst_ip and operation ..
 * status). Only spans whose every value is one of these forms come here: ids as two 32-bit
 * words, start_ns as a u64, integers in [0, 2^53); JS writes every other span itself. The
 * bytes are JSON.stringify's for the same span.
 */
#ifndef ESPAN_SPAN_JSON_H
#define ESPAN_SPAN_JSON_H

#include <stddef.h>
#include <stdint.h>

struct espan_span_numbers {
  uint32_t id_hi, id_lo;      /* span_id: 16 lower-case hex digits */
  int exit;                   /* kind: "exit", else "entry" */
  double req_seq, resp_seq;
  uint64_t start_ns;          /* start_ns: a decimal string */
  double duration_ns;
  const uint8_t* endpoint_run; /* host .. dst_ip, each key after its comma */
  size_t endpoint_len;
  double src_port, dst_port;
  int tcp;                    /* l7_proto: "tcp", else "http" */
  int has_thread;             /* thread_trace_id, absent when 0 */
  uint32_t thread_hi, thread_lo;
  const uint8_t* http_run;    /* operation .. status (empty when all are absent) */
  size_t http_len;
  int has_bytes_read, has_bytes_written;
  double bytes_read, bytes_written;
};

/* Most bytes a span takes besides its two runs. */
#define ESPAN_SPAN_JSON_FIXED 512

/* Writes the span's JSON object (braces included) at out; returns the bytes written, or -1
 * when fewer than ESPAN_SPAN_JSON_FIXED + both runs' lengths are left before end, or a
 * number is not an integer in [0, 2^53). */
long espan_span_json(uint8_t* out, const uint8_t* end, const struct espan_span_numbers* s);

#endif
