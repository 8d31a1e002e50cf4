/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.x heads found in a record's payload, in C, while the ring buffer is drained: the
 * agent's JS reads numbers and offsets (agent/src/assemble/http1-scan.ts) instead of walking the
 * bytes. It is agent/src/assemble/http1.ts's parseRequests / parseResponses restated: same
 * messages, same lengths, same header values; tests check the two on generated messages
 * (test/unit/agent/http1-scan.test.ts) and on the kernel's records
 * (test/e2e/capture-keepalive.test.ts). Anything outside the common case (a request line cut by the
 * capture, a folded or repeated header the agent reads, a non-origin-form target, more than
 * ESPAN_SCAN_MAX messages) sets ESPAN_SCAN_JS: JS parses that payload itself.
 *
 * Responses are scanned with the framing of a response to a method other than HEAD or CONNECT
 * (the scan does not know the request); JS uses the JS parser when it answers those.
 *
 * Why: parsing heads in JS was ~0.7 us a span with hot caches (a request ~225 ns, a Node
 * response ~490 ns), more on a host whose cores the traced programs keep busy.
 */
#ifndef ESPAN_HTTP1_SCAN_H
#define ESPAN_HTTP1_SCAN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ESPAN_SCAN_MAX 16
/* The headers of the application's trace context, in this order (agent/src/app-context.ts). */
#define ESPAN_SCAN_APP_HEADERS 10
#define ESPAN_SCAN_ABSENT 0xffff

enum espan_scan_kind {
	ESPAN_SCAN_NONE = 0,     /* the payload starts with neither a request nor a status line */
	ESPAN_SCAN_REQUESTS = 1, /* msgs are requests (parseRequests) */
	ESPAN_SCAN_RESPONSES = 2, /* msgs are response heads in order, 1xx included (parseResponses
				   * pairs an interim 1xx with the final response after it) */
};

/* espan_scan.flags */
#define ESPAN_SCAN_JS 0x1    /* parse this payload in JS */
#define ESPAN_SCAN_ENDED 0x2 /* responses: the scan ended at end_at, where no response starts
			      * (parseResponses' nextOffset); else it ended on a message whose
			      * length is unknown */

/* espan_scan_msg.flags */
#define ESPAN_SCAN_HEAD_COMPLETE 0x1 /* the blank line ending the head was captured */
#define ESPAN_SCAN_LENGTH 0x2        /* `bytes` is the message's length (head + body) */
#define ESPAN_SCAN_V11 0x4           /* HTTP/1.1 (else HTTP/1.0) */

struct espan_scan_msg {
	uint32_t bytes;      /*  0 head + body, when ESPAN_SCAN_LENGTH */
	uint16_t at;         /*  4 where the message starts in the payload */
	uint16_t head_bytes; /*  6 the head with its blank line, when HEAD_COMPLETE */
	uint16_t status;     /*  8 responses */
	uint16_t method_len; /* 10 requests: the method is the first method_len bytes at `at` */
	uint16_t target_at;  /* 12 requests: the request-target (origin-form) */
	uint16_t target_len; /* 14 */
	uint16_t path_len;   /* 16 the path: the target's first path_len bytes (before ? or #) */
	uint8_t flags;       /* 18 ESPAN_SCAN_HEAD_COMPLETE | ... */
	uint8_t _pad;        /* 19 */
	/* 20 each app header's value (trimmed): offset and length in the payload; offset
	 * ESPAN_SCAN_ABSENT when the header is not there */
	uint16_t app[ESPAN_SCAN_APP_HEADERS][2];
}; /* 60 */

struct espan_scan {
	uint8_t kind;    /* 0 enum espan_scan_kind */
	uint8_t flags;   /* 1 ESPAN_SCAN_JS | ESPAN_SCAN_ENDED */
	uint16_t count;  /* 2 messages */
	uint32_t end_at; /* 4 responses with ESPAN_SCAN_ENDED (may lie past the capture) */
	struct espan_scan_msg msgs[ESPAN_SCAN_MAX];
};

/* The names of the app headers, lower case, in the order of espan_scan_msg.app. */
extern const char *const espan_scan_app_headers[ESPAN_SCAN_APP_HEADERS];

/* Scans payload p[0, n). Returns the bytes of *out that are meaningful (the header and
 * `count` messages), 0 when the payload starts with no HTTP/1.x message. */
size_t espan_http1_scan(const uint8_t *p, size_t n, struct espan_scan *out);

#ifdef __cplusplus
}
#endif

#endif /* ESPAN_HTTP1_SCAN_H */
