/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the C HTTP/1 head scanner (agent/native/src/http1_scan.c), built with
 * AddressSanitizer and UndefinedBehaviorSanitizer by scripts/fuzz-http1.sh. Why: the scanner
 * runs in the agent's process on bytes any traced program sends, so a read past the payload or
 * an offset pointing outside it would crash or mislead the agent. test/unit/agent/http1-scan.test.ts
 * checks it equals the JS parser on generated messages; this checks it on arbitrary bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http1_scan.h"

#define CHECK(cond) \
	do { \
		if (!(cond)) __builtin_trap(); \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		size = 4096; /* a record's payload is at most 4 KiB (bpf/record.h) */
	/* An exact-size heap copy: ASan sees any read past the payload's end. */
	uint8_t *p = malloc(size ? size : 1);
	memcpy(p, data, size);
	struct espan_scan out;
	size_t n = espan_http1_scan(p, size, &out);
	CHECK(n <= sizeof out);
	if (n) {
		CHECK(out.kind == ESPAN_SCAN_REQUESTS || out.kind == ESPAN_SCAN_RESPONSES);
		CHECK(out.count <= ESPAN_SCAN_MAX);
		for (unsigned i = 0; i < out.count; i++) {
			const struct espan_scan_msg *m = &out.msgs[i];
			CHECK(m->at < size);
			if (m->flags & ESPAN_SCAN_HEAD_COMPLETE)
				CHECK((size_t)m->at + m->head_bytes <= size);
			if (out.kind == ESPAN_SCAN_REQUESTS) {
				CHECK((size_t)m->at + m->method_len <= size);
				CHECK((size_t)m->target_at + m->target_len <= size);
				CHECK(m->path_len <= m->target_len);
			}
			for (int k = 0; k < ESPAN_SCAN_APP_HEADERS; k++)
				if (m->app[k][0] != ESPAN_SCAN_ABSENT)
					CHECK((size_t)m->app[k][0] + m->app[k][1] <= size);
		}
	}
	free(p);
	return 0;
}
