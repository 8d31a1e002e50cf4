/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The libbpf side of the addon (libbpf-bootstrap's bootstrap.c, as a library): open -> rodata ->
 * load -> attach, one cleanup path, every failure returned as -errno plus the step that failed
 * and a sentence saying what is missing. No N-API here: addon.cc owns JS.
 */
#ifndef ESPAN_LOADER_H
#define ESPAN_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum espan_strategy {
	ESPAN_STRATEGY_AUTO = 0,      /* tp_btf when the kernel has it, else fd_lookup */
	ESPAN_STRATEGY_TP_BTF = 1,    /* tp_btf/sock_{send,recv}_length (kernel >= 6.3) */
	ESPAN_STRATEGY_FD_LOOKUP = 2, /* fd -> sock at sys_enter (kernels with BTF, 5.10+) */
};

struct espan_opts {
	int strategy;           /* enum espan_strategy */
	uint32_t capture_bytes; /* payload bytes per record, clamped to ESPAN_MAX_CAPTURE */
	uint32_t wakeup_bytes;  /* pending bytes that wake the consumer; 0 = kernel default */
	uint32_t ring_bytes;    /* ring buffer size, power of 2 >= page size; 0 = 16 MiB */
	bool trace_all;         /* trace every process (but the agent and excluded pids) */
	bool every_chunk;       /* a record per send/recv instead of per direction flip */
	bool run_stats;         /* bpf_enable_stats(BPF_STATS_RUN_TIME) while open */
};

struct espan_error {
	int err;        /* negative errno, 0 when fine */
	char step[96];  /* e.g. "load", "attach handle_sock_send" */
	char msg[1024]; /* what is missing, then the last libbpf warnings */
};

/* Totals since open. */
struct espan_stats {
	uint64_t records;      /* records copied into arenas (handed to JS then, or held a while) */
	uint64_t batches;      /* drains that returned at least one record */
	uint64_t arena_full;   /* drains cut short because the arena was full */
	uint64_t drops;        /* kernel: ring buffer full, record lost */
	uint64_t no_payload;   /* kernel: data event without a user buffer */
	uint64_t close_unseen; /* kernel: TCP_CLOSE of a socket with no traced data */
	uint64_t ring_used;    /* bytes written by the kernel, not yet consumed */
	uint64_t ring_size;
	bool run_stats;
};

struct espan_prog_stat {
	const char *name;
	uint64_t run_cnt;
	uint64_t run_time_ns;
	uint64_t recursion_misses;
	uint64_t verified_insns; /* instructions the verifier processed at load */
};

/* Arena framing: [u32 record length][u32 scan length][record][zero pad to 8][scan][zero pad
 * to 8]. The scan (struct espan_scan, http1_scan.h) follows data records that start a message
 * with payload and look like HTTP/1.x; its length is 0 otherwise. Fixed arena, never grown:
 * libbpf 1.1's ring_buffer__consume has no bound, and a growing buffer under 4 KB records
 * cost 400k page faults and 640 MB RSS (reference/bpf.md pitfall 8). */
#define ESPAN_FRAME_HDR 8
#define ESPAN_ARENA_BYTES (4u << 20)

struct espan_loader;

struct espan_loader *espan_open(const struct espan_opts *opts, struct espan_error *err);
int espan_attach(struct espan_loader *l, struct espan_error *err);
void espan_close(struct espan_loader *l);

int espan_strategy(const struct espan_loader *l); /* the one loaded */
/* Why "auto" loaded fd_lookup rather than tp_btf (NULL when it did not fall back). */
const char *espan_strategy_fallback(const struct espan_loader *l);
const char *espan_strategy_name(int strategy);
bool espan_attached(const struct espan_loader *l);
/* Detaches every program; maps, the ring and the pid filter stay (attach again to resume). */
void espan_detach(struct espan_loader *l);

int espan_pid_set(struct espan_loader *l, uint32_t tgid, uint32_t flags);
int espan_pid_del(struct espan_loader *l, uint32_t tgid);
void espan_set_trace_all(struct espan_loader *l, bool on);
uint32_t espan_set_capture_bytes(struct espan_loader *l, uint32_t n); /* returns the applied value */
void espan_set_wakeup_bytes(struct espan_loader *l, uint32_t n);
void espan_set_every_chunk(struct espan_loader *l, bool on);
int espan_set_run_stats(struct espan_loader *l, bool on);

/* The ring buffer's epoll fd: readable when a wake-up was sent. */
int espan_poll_fd(const struct espan_loader *l);

/* Appends pending records to arena (framed as above), after the *used bytes and *count
 * records already there, until the ring is empty or the arena is nearly full. Returns 1 when
 * it stopped because the arena filled (hand it over, then call again), 0 when the ring is
 * drained, -errno on error. *used and *count grow by what was written; *process_records says
 * whether an exec, fork or exit record was among it. */
int espan_drain(struct espan_loader *l, uint8_t *arena, size_t arena_size, size_t *used,
		uint32_t *count, bool *process_records);

int espan_read_stats(struct espan_loader *l, struct espan_stats *out);
/* Programs that are loaded; fills up to max entries, returns how many. */
int espan_prog_stats(struct espan_loader *l, struct espan_prog_stat *out, int max);

#ifdef __cplusplus
}
#endif

#endif /* ESPAN_LOADER_H */
