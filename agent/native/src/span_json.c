// SPDX-License-Identifier: Apache-2.0
// See span_json.h. Why in C: JS wrote these fields a byte at a time (charCodeAt per digit, a
// division per two digits, a bounds check per store): the JSON writer was ~1 us a span offline
// and a fifth of the agent's CPU on the hello-world bench (perf, --perf-basic-prof).
#include "span_json.h"

#include <string.h>

#define KEY(p, k) (memcpy(p, k, sizeof(k) - 1), (p) + sizeof(k) - 1)

/* "00" .. "ff" and "00" .. "99": two characters a table load (a division or shift per
 * character was most of this file's time: perf, the hello-world bench). */
static char kHexPairs[512];
static char kDecPairs[200];

/* Filled when the addon is loaded (a constructor: no init call to forget). */
__attribute__((constructor)) static void fill_pairs(void) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 256; i++) {
    kHexPairs[2 * i] = hex[i >> 4];
    kHexPairs[2 * i + 1] = hex[i & 15];
  }
  for (int i = 0; i < 100; i++) {
    kDecPairs[2 * i] = (char)('0' + i / 10);
    kDecPairs[2 * i + 1] = (char)('0' + i % 10);
  }
}

static uint8_t* hex32(uint8_t* p, uint32_t w) {
  memcpy(p, kHexPairs + 2 * (w >> 24), 2);
  memcpy(p + 2, kHexPairs + 2 * ((w >> 16) & 0xff), 2);
  memcpy(p + 4, kHexPairs + 2 * ((w >> 8) & 0xff), 2);
  memcpy(p + 6, kHexPairs + 2 * (w & 0xff), 2);
  return p + 8;
}

static uint8_t* id64(uint8_t* p, uint32_t hi, uint32_t lo) {
  *p++ = '"';
  p = hex32(p, hi);
  p = hex32(p, lo);
  *p++ = '"';
  return p;
}

static uint8_t* u64(uint8_t* p, uint64_t x) {
  char d[20];
  int i = 20;
  while (x >= 100) {
    uint64_t q = x / 100;
    i -= 2;
    memcpy(d + i, kDecPairs + 2 * (x - q * 100), 2);
    x = q;
  }
  if (x >= 10) {
    i -= 2;
    memcpy(d + i, kDecPairs + 2 * x, 2);
  } else {
    d[--i] = (char)('0' + x);
  }
  memcpy(p, d + i, (size_t)(20 - i));
  return p + (20 - i);
}

/* An integer in [0, 2^53) as JSON.stringify writes it (-0 as 0); NULL otherwise. */
static uint8_t* num(uint8_t* p, double v) {
  if (p == NULL || !(v >= 0 && v <= 9007199254740991.0) || (double)(uint64_t)v != v) return NULL;
  return u64(p, (uint64_t)v);
}

long espan_span_json(uint8_t* out, const uint8_t* end, const struct espan_span_numbers* s) {
  if (end < out || (size_t)(end - out) < ESPAN_SPAN_JSON_FIXED + s->endpoint_len + s->http_len) return -1;
  uint8_t* p = out;
  p = KEY(p, "{\"span_id\":");
  p = id64(p, s->id_hi, s->id_lo);
  p = s->exit ? KEY(p, ",\"kind\":\"exit\",\"req_seq\":") : KEY(p, ",\"kind\":\"entry\",\"req_seq\":");
  p = num(p, s->req_seq);
  if (p == NULL) return -1;
  p = KEY(p, ",\"resp_seq\":");
  p = num(p, s->resp_seq);
  if (p == NULL) return -1;
  p = KEY(p, ",\"start_ns\":\"");
  p = u64(p, s->start_ns);
  p = KEY(p, "\",\"duration_ns\":");
  p = num(p, s->duration_ns);
  if (p == NULL) return -1;
  memcpy(p, s->endpoint_run, s->endpoint_len);
  p += s->endpoint_len;
  p = KEY(p, ",\"src_port\":");
  p = num(p, s->src_port);
  if (p == NULL) return -1;
  p = KEY(p, ",\"dst_port\":");
  p = num(p, s->dst_port);
  if (p == NULL) return -1;
  p = s->tcp ? KEY(p, ",\"l7_proto\":\"tcp\"") : KEY(p, ",\"l7_proto\":\"http\"");
  if (s->has_thread) {
    p = KEY(p, ",\"thread_trace_id\":");
    p = id64(p, s->thread_hi, s->thread_lo);
  }
  memcpy(p, s->http_run, s->http_len);
  p += s->http_len;
  if (s->has_bytes_read) {
    p = KEY(p, ",\"bytes_read\":");
    p = num(p, s->bytes_read);
    if (p == NULL) return -1;
  }
  if (s->has_bytes_written) {
    p = KEY(p, ",\"bytes_written\":");
    p = num(p, s->bytes_written);
    if (p == NULL) return -1;
  }
  *p++ = '}';
  return (long)(p - out);
}
