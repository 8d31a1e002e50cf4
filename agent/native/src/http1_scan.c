/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.x heads of a captured payload (http1_scan.h says what and why). Each function names the
 * one of agent/src/assemble/http1.ts it restates; where the two could differ, this one gives up
 * (ESPAN_SCAN_JS) rather than guess.
 */
#include "http1_scan.h"

#include <string.h>

/* The app headers, in espan_scan_app_headers' order. */
#define APP_HEADERS(H)                                                                       \
	H("traceparent") H("x-datadog-trace-id") H("x-datadog-parent-id")                    \
	H("x-datadog-sampling-priority") H("x-datadog-tags") H("b3") H("x-b3-traceid")       \
	H("x-b3-spanid") H("x-b3-sampled") H("x-b3-flags")
#define NAME(s) s,
#define LEN(s) sizeof(s) - 1,

const char *const espan_scan_app_headers[ESPAN_SCAN_APP_HEADERS] = {APP_HEADERS(NAME)};

/* Every header the scan reads: the app ones, then the two of the framing; and their lengths,
 * compared before the bytes: most header names (Host, Date, ...) match none by length alone (a
 * strlen per name and header line was ~2% of the agent's CPU). */
static const char *const scan_names[] = {APP_HEADERS(NAME) NAME("content-length")
						 NAME("transfer-encoding")};
static const uint8_t scan_name_lens[] = {APP_HEADERS(LEN) LEN("content-length")
						 LEN("transfer-encoding")};
_Static_assert(sizeof(scan_names) / sizeof(scan_names[0]) == ESPAN_SCAN_APP_HEADERS + 2,
	       "the app headers, then content-length and transfer-encoding");
#undef NAME
#undef LEN

/* Header indexes beyond the app ones. */
#define H_CONTENT_LENGTH ESPAN_SCAN_APP_HEADERS
#define H_TRANSFER_ENCODING (ESPAN_SCAN_APP_HEADERS + 1)

#define MAX_PIPELINED 256 /* http1.ts MAX_PIPELINED */

enum { TE_NONE, TE_CHUNKED, TE_OTHER };

/* What the head parse found (parseHead), before framing. */
struct head {
	int request;
	int v11;
	int complete;
	size_t head_bytes;
	size_t method_len, target_at, target_len, path_len;
	unsigned status;
	int te;
	long long cl; /* -1: no Content-Length */
	uint16_t app[ESPAN_SCAN_APP_HEADERS][2];
};

/* What String.prototype.trim removes and RegExp \s matches, among latin1 bytes (isWs). */
static inline int is_ws(uint8_t b)
{
	return b == 0x20 || (b >= 0x09 && b <= 0x0d) || b == 0xa0;
}

static inline int is_upper(uint8_t b)
{
	return b >= 'A' && b <= 'Z';
}

/* Method characters after the first: [A-Z0-9_-] (isMethodByte). */
static inline int is_method_byte(uint8_t b)
{
	return is_upper(b) || (b >= '0' && b <= '9') || b == '_' || b == '-';
}

/* tchar, RFC 9110 5.6.2 (TCHAR). */
static inline int is_tchar(uint8_t b)
{
	if ((b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z'))
		return 1;
	switch (b) {
	case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+':
	case '.': case '^': case '_': case '`': case '|': case '~': case '-':
		return 1;
	default:
		return 0;
	}
}

static const uint8_t *find_lf(const uint8_t *p, size_t from, size_t to)
{
	return from < to ? memchr(p + from, '\n', to - from) : NULL;
}

/* looksLikeRequest */
static int looks_like_request(const uint8_t *p, size_t n, size_t at)
{
	size_t i = at, end = n < at + 21 ? n : at + 21;
	while (i < end && (is_upper(p[i]) || p[i] == '-' || p[i] == '_'))
		i++;
	return i - at >= 2 && i < n && p[i] == ' ';
}

/* looksLikeResponse */
static int looks_like_response(const uint8_t *p, size_t n, size_t at)
{
	return n - at >= 8 && memcmp(p + at, "HTTP/1.", 7) == 0;
}

/* wantedName: the index of the header named p[from, to) (ASCII case-insensitive), or -1. */
static int wanted(const uint8_t *p, size_t from, size_t to)
{
	size_t len = to - from;
	for (int k = 0; k < ESPAN_SCAN_APP_HEADERS + 2; k++) {
		if (scan_name_lens[k] != len)
			continue;
		const char *name = scan_names[k];
		size_t i = 0;
		for (; i < len; i++) {
			uint8_t b = p[from + i];
			if (b != (uint8_t)name[i] && !(is_upper(b) && (b | 0x20) == (uint8_t)name[i]))
				break;
		}
		if (i == len)
			return k;
	}
	return -1;
}

/* trimmed(): [*from, *to) without leading and trailing whitespace. */
static void trim(const uint8_t *p, size_t *from, size_t *to)
{
	while (*from < *to && is_ws(p[*from]))
		(*from)++;
	while (*to > *from && is_ws(p[*to - 1]))
		(*to)--;
}

/* The last coding of a Transfer-Encoding value is "chunked" (framingOf). */
static int te_of(const uint8_t *p, size_t from, size_t to)
{
	size_t start = from;
	for (size_t i = from; i < to; i++)
		if (p[i] == ',')
			start = i + 1;
	size_t end = to;
	trim(p, &start, &end);
	static const char chunked[] = "chunked";
	if (end - start != sizeof(chunked) - 1)
		return TE_OTHER;
	for (size_t i = 0; i < sizeof(chunked) - 1; i++)
		if ((p[start + i] | (is_upper(p[start + i]) ? 0x20 : 0)) != (uint8_t)chunked[i])
			return TE_OTHER;
	return TE_CHUNKED;
}

/* The start line p[at, end) (startLine). 1: a head; 0: none (null); -1: leave it to JS. */
static int start_line(const uint8_t *p, size_t at, size_t end, struct head *h)
{
	if (is_upper(p[at])) {
		size_t i = at + 1;
		while (i < end && is_method_byte(p[i]))
			i++;
		size_t mlen = i - at;
		if (mlen >= 2 && mlen <= 20 && i < end && p[i] == ' ') {
			size_t t = i + 1, j = t, path_end = 0;
			int cut = 0;
			while (j < end && !is_ws(p[j])) {
				if (!cut && (p[j] == '?' || p[j] == '#')) {
					path_end = j;
					cut = 1;
				}
				j++;
			}
			if (j > t && end - j == 9 && memcmp(p + j, " HTTP/1.", 8) == 0 &&
			    (p[end - 1] == '0' || p[end - 1] == '1')) {
				/* pathOf: absolute-form, authority-form (CONNECT), asterisk-form */
				if (p[t] != '/' || (mlen == 7 && memcmp(p + at, "CONNECT", 7) == 0))
					return -1;
				h->request = 1;
				h->v11 = p[end - 1] == '1';
				h->method_len = mlen;
				h->target_at = t;
				h->target_len = j - t;
				h->path_len = (cut ? path_end : j) - t;
				return 1;
			}
			return 0;
		}
	}
	if (end - at < 12 || memcmp(p + at, "HTTP/1.", 7) != 0)
		return 0;
	uint8_t v = p[at + 7];
	if ((v != '0' && v != '1') || p[at + 8] != ' ')
		return 0;
	uint8_t d0 = p[at + 9], d1 = p[at + 10], d2 = p[at + 11];
	if (d0 < '1' || d0 > '9' || d1 < '0' || d1 > '9' || d2 < '0' || d2 > '9')
		return 0;
	if (end > at + 12) {
		if (p[at + 12] != ' ')
			return 0;
		if (memchr(p + at + 13, '\r', end - at - 13))
			return 0;
	}
	h->request = 0;
	h->v11 = v == '1';
	h->status = (d0 - '0') * 100 + (d1 - '0') * 10 + (d2 - '0');
	return 1;
}

/* parseHead (the agent's headers only). 1: a head; 0: none; -1: leave it to JS. */
static int parse_head(const uint8_t *p, size_t n, size_t at, struct head *h)
{
	memset(h, 0, sizeof(*h));
	h->cl = -1;
	for (int k = 0; k < ESPAN_SCAN_APP_HEADERS; k++)
		h->app[k][0] = ESPAN_SCAN_ABSENT;
	const uint8_t *lf = find_lf(p, at, n);
	if (!lf)
		return -1; /* cutRequestLine: a request line longer than the capture */
	size_t first_nl = lf - p;
	size_t line_end = first_nl > at && p[first_nl - 1] == '\r' ? first_nl - 1 : first_nl;
	int r = start_line(p, at, line_end, h);
	if (r <= 0)
		return r;
	size_t pos = first_nl + 1;
	int saw_header = 0; /* a header line came (a folded line continues it) */
	int last_kept = 0;  /* ... and it was one the agent reads */
	int seen[ESPAN_SCAN_APP_HEADERS + 2] = {0};
	while (pos < n) {
		lf = find_lf(p, pos, n);
		if (!lf)
			break; /* cut inside this line: keep what came before it */
		size_t nl = lf - p, start = pos;
		size_t end = nl > start && p[nl - 1] == '\r' ? nl - 1 : nl;
		pos = nl + 1;
		if (end == start) {
			h->complete = 1;
			h->head_bytes = pos - at;
			break;
		}
		uint8_t c0 = p[start];
		if ((c0 == ' ' || c0 == '\t') && saw_header) {
			if (last_kept)
				return -1; /* obs-fold of a header the agent reads: JS joins the lines */
			continue;
		}
		const uint8_t *colon_p = memchr(p + start, ':', end - start);
		if (!colon_p || colon_p == p + start)
			continue;
		size_t colon = colon_p - p;
		int k = wanted(p, start, colon);
		if (k < 0) {
			size_t i = start;
			while (i < colon && is_tchar(p[i]))
				i++;
			if (i == colon) {
				saw_header = 1;
				last_kept = 0;
			}
			continue;
		}
		if (seen[k])
			return -1; /* repeated: JS joins the values with ", " */
		seen[k] = 1;
		size_t vf = colon + 1, vt = end;
		trim(p, &vf, &vt);
		if (k < ESPAN_SCAN_APP_HEADERS) {
			h->app[k][0] = (uint16_t)vf;
			h->app[k][1] = (uint16_t)(vt - vf);
		} else if (k == H_CONTENT_LENGTH) {
			/* decimal(): 1 to 15 digits; anything else (a list, junk) is JS's */
			if (vt - vf == 0 || vt - vf > 15)
				return -1;
			long long v = 0;
			for (size_t i = vf; i < vt; i++) {
				if (p[i] < '0' || p[i] > '9')
					return -1;
				v = v * 10 + (p[i] - '0');
			}
			h->cl = v;
		} else {
			h->te = te_of(p, vf, vt);
		}
		saw_header = 1;
		last_kept = 1;
	}
	return 1;
}

/* chunkedBodyBytes: the bytes of a chunked body starting at `at`, when its end was captured;
 * -1 otherwise. */
static long long chunked_body_bytes(const uint8_t *p, size_t n, size_t at)
{
	size_t pos = at;
	for (int guard = 0; guard < 100000; guard++) {
		const uint8_t *lf = find_lf(p, pos, n);
		if (!lf)
			return -1;
		size_t nl = lf - p;
		size_t end = nl > pos && p[nl - 1] == '\r' ? nl - 1 : nl; /* .replace(/\r$/, "") */
		const uint8_t *semi = memchr(p + pos, ';', end - pos);
		size_t from = pos, to = semi ? (size_t)(semi - p) : end;
		trim(p, &from, &to);
		if (to - from < 1 || to - from > 12)
			return -1;
		unsigned long long size = 0;
		for (size_t i = from; i < to; i++) {
			uint8_t c = p[i];
			int d = c >= '0' && c <= '9' ? c - '0'
				: c >= 'a' && c <= 'f' ? c - 'a' + 10
				: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
			if (d < 0)
				return -1;
			size = size * 16 + d;
		}
		pos = nl + 1;
		if (size == 0) {
			for (;;) {
				lf = find_lf(p, pos, n);
				if (!lf)
					return -1;
				size_t tl = lf - p;
				size_t line_end = tl > pos && p[tl - 1] == '\r' ? tl - 1 : tl;
				int empty = line_end == pos;
				pos = tl + 1;
				if (empty)
					return (long long)(pos - at);
			}
		}
		if (size > n - pos)
			return -1; /* cut inside the chunk */
		pos += size;
		if (pos + 1 < n && p[pos] == '\r' && p[pos + 1] == '\n')
			pos += 2;
		else if (pos < n && p[pos] == '\n')
			pos += 1;
		else
			return -1;
	}
	return -1;
}

/* messageBytes (a response to a method other than HEAD and CONNECT): head + body, or -1. */
static long long message_bytes(const uint8_t *p, size_t n, size_t at, const struct head *h)
{
	if (!h->complete)
		return -1;
	if (!h->request && (h->status < 200 || h->status == 204 || h->status == 304))
		return h->head_bytes;
	if (h->te == TE_CHUNKED) {
		long long body = chunked_body_bytes(p, n, at + h->head_bytes);
		return body < 0 ? -1 : (long long)h->head_bytes + body;
	}
	if (h->te == TE_OTHER)
		return -1; /* request: unknown; response: until the connection closes */
	if (h->cl >= 0)
		return (long long)h->head_bytes + h->cl;
	return h->request ? (long long)h->head_bytes : -1; /* a response without a length: close */
}

/* Lengths past 4 GiB (a Content-Length of 15 digits) are JS's. */
#define TOO_LONG 0xffffffffLL

static void put(struct espan_scan *out, size_t at, const struct head *h, long long bytes)
{
	struct espan_scan_msg *m = &out->msgs[out->count++];
	memset(m, 0, sizeof(*m));
	m->at = (uint16_t)at;
	m->flags = (h->complete ? ESPAN_SCAN_HEAD_COMPLETE : 0) | (h->v11 ? ESPAN_SCAN_V11 : 0);
	if (h->complete)
		m->head_bytes = (uint16_t)h->head_bytes;
	if (bytes >= 0) {
		m->bytes = (uint32_t)bytes;
		m->flags |= ESPAN_SCAN_LENGTH;
	}
	m->status = (uint16_t)h->status;
	m->method_len = (uint16_t)h->method_len;
	m->target_at = (uint16_t)h->target_at;
	m->target_len = (uint16_t)h->target_len;
	m->path_len = (uint16_t)h->path_len;
	memcpy(m->app, h->app, sizeof(m->app));
}

static size_t scan_size(const struct espan_scan *out)
{
	return offsetof(struct espan_scan, msgs) + out->count * sizeof(struct espan_scan_msg);
}

static size_t give_up(struct espan_scan *out)
{
	out->flags |= ESPAN_SCAN_JS;
	out->count = 0;
	return scan_size(out);
}

size_t espan_http1_scan(const uint8_t *p, size_t n, struct espan_scan *out)
{
	memset(out, 0, offsetof(struct espan_scan, msgs));
	if (n > 0xffff)
		n = 0xffff; /* offsets are 16-bit; captures are at most 4 KB */
	struct head h;
	size_t at = 0;
	if (looks_like_request(p, n, 0)) {
		/* parseRequests */
		out->kind = ESPAN_SCAN_REQUESTS;
		while (at < n && looks_like_request(p, n, at)) {
			int r = parse_head(p, n, at, &h);
			if (r < 0)
				return give_up(out);
			if (r == 0 || !h.request)
				break;
			if (out->count == ESPAN_SCAN_MAX)
				return give_up(out);
			long long bytes = message_bytes(p, n, at, &h);
			if (bytes > TOO_LONG)
				return give_up(out);
			put(out, at, &h, bytes);
			if (bytes <= 0)
				break;
			at += bytes;
		}
		return scan_size(out);
	}
	if (!looks_like_response(p, n, 0))
		return 0;
	/* parseResponses' loop, without pairing 1xx with their final responses (JS does) */
	out->kind = ESPAN_SCAN_RESPONSES;
	for (;;) {
		int r = at < n && looks_like_response(p, n, at) ? parse_head(p, n, at, &h) : 0;
		if (r < 0)
			return give_up(out);
		if (r == 0 || h.request) {
			out->flags |= ESPAN_SCAN_ENDED;
			out->end_at = (uint32_t)at;
			break;
		}
		if (out->count == ESPAN_SCAN_MAX)
			return give_up(out);
		long long bytes = message_bytes(p, n, at, &h);
		/* bytes < 0: the length is not known yet (a body cut by the capture, a response ended by
		 * close); only a known length can overflow the 32-bit fields */
		if (bytes > TOO_LONG || (bytes >= 0 && at + (size_t)bytes > TOO_LONG))
			return give_up(out);
		put(out, at, &h, bytes);
		if (bytes < 0)
			break;
		at += bytes;
	}
	return scan_size(out);
}
