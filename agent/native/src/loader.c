// SPDX-License-Identifier: Apache-2.0
/*
 * Loader for bpf/capture.bpf.c: checks -> open -> rodata -> load -> attach (bootstrap.c's
 * checklist). Every failure fills struct espan_error with -errno, the step and what is
 * missing, and goes through one cleanup path.
 *
 * libbpf is Debian's 1.1 (linked dynamically: its libbpf.a is not -fPIC, reference/bpf.md
 * pitfall 9), so no ring_buffer__consume_n (1.5), no bpf_prog_get_info_by_fd (1.2) and no
 * ring__avail_data (1.3): see espan_drain and espan_stats for what is done instead.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strerrorname_np */
#endif
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "record.h"
#include "capture.skel.h"
#include "http1_scan.h"
#include "loader.h"

#define MAX_LINKS 32
#define DEFAULT_RING_BYTES (16u << 20)
/* Largest frame: a data record with a full capture, and its HTTP scan. */
#define ALIGN8(n) (((n) + 7) & ~(size_t)7)
#define MAX_FRAME (ESPAN_FRAME_HDR + ALIGN8(ESPAN_RECORD_SIZE + ESPAN_MAX_CAPTURE) + \
		   ALIGN8(sizeof(struct espan_scan)))

struct espan_loader {
	struct capture_bpf *skel;
	struct ring_buffer *rb;
	struct bpf_link *links[MAX_LINKS];
	int nlinks;
	int strategy;
	char fallback[sizeof(((struct espan_error *)0)->msg)]; /* why auto did not load tp_btf */
	int stats_fd; /* bpf_enable_stats() fd: run-time stats are on while it is open */
	volatile unsigned long *ring_pos; /* read-only map of the consumer + producer pages */
	size_t ring_pos_len;
	long page;
	/* drain state */
	uint8_t *arena;
	size_t arena_size;
	size_t used;
	uint32_t count;
	bool process_records; /* an exec, fork or exit record was copied by this drain */
	uint64_t records, batches, arena_full;
};

/* ---- errors and libbpf output ------------------------------------------------------------- */

/* libbpf's print callback is process-wide; keep the tail of its warnings so an error can show
 * the verifier's or libbpf's own words. ESPAN_LIBBPF_DEBUG=1 also prints everything. */
static char g_log[1536];
static size_t g_log_len;

static int on_libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	static int debug = -1;
	if (debug < 0)
		debug = getenv("ESPAN_LIBBPF_DEBUG") != NULL;
	if (debug) {
		va_list cp;
		va_copy(cp, ap);
		vfprintf(stderr, fmt, cp);
		va_end(cp);
	}
	if (level == LIBBPF_DEBUG)
		return 0;
	/* A verifier log arrives as one message; its end (the refusal) is what matters. */
	char *buf = NULL;
	int n = vasprintf(&buf, fmt, ap);
	if (n <= 0 || !buf) {
		free(buf);
		return 0;
	}
	const char *line = buf;
	if ((size_t)n >= sizeof(g_log)) {
		line = buf + n - (sizeof(g_log) - 1);
		n = sizeof(g_log) - 1;
	}
	if (g_log_len + n >= sizeof(g_log)) { /* keep the newest text */
		size_t drop = g_log_len + n - sizeof(g_log) + 1;
		if (drop > g_log_len)
			drop = g_log_len;
		memmove(g_log, g_log + drop, g_log_len - drop);
		g_log_len -= drop;
	}
	memcpy(g_log + g_log_len, line, n);
	g_log_len += n;
	g_log[g_log_len] = 0;
	free(buf);
	return 0;
}

static void log_reset(void)
{
	static int installed;
	if (!installed) {
		libbpf_set_print(on_libbpf_print);
		installed = 1;
	}
	g_log_len = 0;
	g_log[0] = 0;
}

static const char *errname(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);
	return n ? n : "E?";
}

/* "<ERRNAME>: <what>", then the libbpf tail, newlines folded so it reads on one line. */
static int fail(struct espan_error *e, int err, const char *step, const char *fmt, ...)
{
	if (err > 0)
		err = -err;
	if (err == 0)
		err = -EINVAL;
	e->err = err;
	snprintf(e->step, sizeof(e->step), "%s", step);
	int off = snprintf(e->msg, sizeof(e->msg), "%s: %s: ", step, errname(err));
	va_list ap;
	va_start(ap, fmt);
	if (off < (int)sizeof(e->msg))
		off += vsnprintf(e->msg + off, sizeof(e->msg) - off, fmt, ap);
	va_end(ap);
	if (g_log_len && off < (int)sizeof(e->msg) - 16) {
		size_t room = sizeof(e->msg) - off - 12;
		const char *tail = g_log_len > room ? g_log + g_log_len - room : g_log;
		off += snprintf(e->msg + off, sizeof(e->msg) - off, " [libbpf: %s]", tail);
		for (char *p = e->msg; *p; p++)
			if (*p == '\n')
				*p = ' ';
	}
	return err;
}

/* ---- checks before open ------------------------------------------------------------------- */

/* Strategy 1 needs both tracepoints in the kernel's BTF (Linux >= 6.3). Parsing vmlinux BTF
 * costs tens of ms, so it is done once per open. Returns the missing one, or NULL. */
static const char *missing_sock_length_tracepoint(void)
{
	static const char *tps[] = {"sock_send_length", "sock_recv_length"};
	const char *missing = tps[0];
	struct btf *btf = btf__load_vmlinux_btf();
	if (!btf)
		return missing;
	missing = NULL;
	for (int i = 0; i < 2 && !missing; i++) {
		char name[64];
		snprintf(name, sizeof(name), "btf_trace_%s", tps[i]);
		if (btf__find_by_name_kind(btf, name, BTF_KIND_TYPEDEF) <= 0)
			missing = tps[i];
	}
	btf__free(btf);
	return missing;
}

static bool tracefs_ready(void)
{
	return access("/sys/kernel/tracing/events", F_OK) == 0 ||
	       access("/sys/kernel/debug/tracing/events", F_OK) == 0;
}

static int check_system(struct espan_error *e)
{
	if (geteuid() != 0)
		return fail(e, -EPERM, "check root",
			    "not root (euid %u): loading BPF programs needs root (CAP_BPF, CAP_PERFMON)",
			    geteuid());
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0)
		return fail(e, -errno, "check BTF",
			    "no BTF: /sys/kernel/btf/vmlinux is missing (kernel built without "
			    "CONFIG_DEBUG_INFO_BTF); CO-RE programs cannot load");
	/* libbpf attaches tracepoint/ programs through tracefs event ids. Some machines boot
	 * without it mounted (seen on this project's VMs); the agent is root, so mount it. */
	if (!tracefs_ready() && mount("nodev", "/sys/kernel/tracing", "tracefs", 0, NULL) != 0)
		return fail(e, -errno, "check tracefs",
			    "tracefs is not mounted at /sys/kernel/tracing and mounting it failed "
			    "(mount -t tracefs nodev /sys/kernel/tracing)");
	return 0;
}

/* ---- open + load -------------------------------------------------------------------------- */

static bool is_tp_btf_prog(const struct capture_bpf *s, const struct bpf_program *p)
{
	return p == s->progs.handle_sock_send || p == s->progs.handle_sock_recv;
}

/* Strategy 2's syscall programs are named handle_enter_<syscall> and handle_exit_<syscall>
 * (handle_exit, without the underscore, is the process-exit program that both strategies
 * load). Strategy 1 enables no syscall tracepoint: its tp_btf programs read the syscall's
 * arguments from pt_regs (bpf/capture.bpf.c says why). */
static bool is_syscall_prog(const struct bpf_program *p)
{
	const char *name = bpf_program__name(p);
	return strncmp(name, "handle_enter_", 13) == 0 || strncmp(name, "handle_exit_", 12) == 0;
}

static int on_sample(void *ctx, void *data, size_t size)
{
	struct espan_loader *l = ctx;
	size_t frame = ESPAN_FRAME_HDR + ALIGN8(size);
	if (l->used + MAX_FRAME > l->arena_size)
		return -E2BIG; /* cannot happen: the soft limit below leaves room for MAX_FRAME
				* (were it to, libbpf has already consumed this record) */
	uint8_t *p = l->arena + l->used;
	memcpy(p + ESPAN_FRAME_HDR, data, size);
	memset(p + ESPAN_FRAME_HDR + size, 0, frame - ESPAN_FRAME_HDR - size);
	/* A message start with payload: its HTTP/1.x heads, scanned here (http1_scan.h). */
	const struct espan_record *r = data;
	size_t scan = 0;
	if (r->kind == ESPAN_KIND_DATA && r->cap_len > 0 && !(r->flags & ESPAN_F_CONT) &&
	    ESPAN_RECORD_SIZE + (size_t)r->cap_len <= size) {
		scan = espan_http1_scan((const uint8_t *)data + ESPAN_RECORD_SIZE, r->cap_len,
					(struct espan_scan *)(p + frame));
		memset(p + frame + scan, 0, ALIGN8(scan) - scan);
		frame += ALIGN8(scan);
	}
	uint32_t hdr[2] = {(uint32_t)size, (uint32_t)scan};
	memcpy(p, hdr, sizeof(hdr));
	l->used += frame;
	l->count++;
	uint8_t kind = r->kind;
	if (kind == ESPAN_KIND_EXEC || kind == ESPAN_KIND_FORK || kind == ESPAN_KIND_EXIT)
		l->process_records = true;
	/* libbpf 1.1 advances the consumer past a sample before its callback's error stops the
	 * loop, so stop only after this record was copied. */
	return l->used + MAX_FRAME > l->arena_size ? -ENOSPC : 0;
}

static void loader_free(struct espan_loader *l)
{
	if (!l)
		return;
	for (int i = 0; i < l->nlinks; i++)
		bpf_link__destroy(l->links[i]);
	l->nlinks = 0;
	ring_buffer__free(l->rb);
	if (l->ring_pos)
		munmap((void *)l->ring_pos, l->ring_pos_len);
	if (l->stats_fd >= 0)
		close(l->stats_fd);
	capture_bpf__destroy(l->skel);
	free(l);
}

static struct espan_loader *open_strategy(const struct espan_opts *o, int strategy,
					  struct espan_error *e)
{
	struct espan_loader *l = calloc(1, sizeof(*l));
	struct bpf_program *prog;
	int err;

	if (!l) {
		fail(e, -ENOMEM, "open", "out of memory");
		return NULL;
	}
	l->stats_fd = -1;
	l->strategy = strategy;
	l->page = sysconf(_SC_PAGESIZE);

	l->skel = capture_bpf__open();
	if (!l->skel) {
		fail(e, -errno, "open", "cannot open the embedded BPF object");
		goto cleanup;
	}

	/* rodata: fixed for the life of the programs, so the verifier prunes the other path. */
	l->skel->rodata->fd_lookup = strategy == ESPAN_STRATEGY_FD_LOOKUP;
	l->skel->rodata->self_tgid = (uint32_t)getpid();
	/* .data/.bss: runtime knobs, mmapped, changed later through the same pointers. */
	l->skel->data->capture_bytes = o->capture_bytes > ESPAN_MAX_CAPTURE ? ESPAN_MAX_CAPTURE
									    : o->capture_bytes;
	l->skel->data->wakeup_bytes = o->wakeup_bytes;
	l->skel->bss->trace_all = o->trace_all;
	l->skel->bss->every_chunk = o->every_chunk;

	uint32_t ring = o->ring_bytes ? o->ring_bytes : DEFAULT_RING_BYTES;
	if (ring < (uint32_t)l->page || (ring & (ring - 1))) {
		fail(e, -EINVAL, "configure ring buffer",
		     "ringBytes %u must be a power of 2 and at least a page (%ld)", ring, l->page);
		goto cleanup;
	}
	err = bpf_map__set_max_entries(l->skel->maps.events, ring);
	if (err) {
		fail(e, err, "configure ring buffer", "cannot size the ring buffer to %u bytes", ring);
		goto cleanup;
	}
	/* Maps of strategy 2 only (strategy 1 keeps a socket's state in its sk storage and reads
	 * the syscall's buffer from pt_regs): one entry, not 65536 and 16384 preallocated. */
	if (strategy == ESPAN_STRATEGY_TP_BTF) {
		bpf_map__set_max_entries(l->skel->maps.conns, 1);
		bpf_map__set_max_entries(l->skel->maps.stashes, 1);
	}

	bpf_object__for_each_program(prog, l->skel->obj)
	{
		bool on = true;
		if (is_tp_btf_prog(l->skel, prog))
			on = strategy == ESPAN_STRATEGY_TP_BTF;
		else if (is_syscall_prog(prog))
			on = strategy == ESPAN_STRATEGY_FD_LOOKUP;
		bpf_program__set_autoload(prog, on);
	}

	if (strategy == ESPAN_STRATEGY_TP_BTF) {
		const char *missing = missing_sock_length_tracepoint();
		if (missing) {
			fail(e, -ENOENT, "check tracepoint",
			     "tracepoint sock/%s is absent from the kernel BTF (it came in Linux "
			     "6.3; strategy 'fd_lookup' does without it)",
			     missing);
			goto cleanup;
		}
	}

	/* The verifier stops with EAGAIN when a signal is pending, and libbpf retries only a few
	 * times: a profiler's SIGPROF every millisecond (node --cpu-prof) failed the longer
	 * tp_btf verification every time, and "auto" quietly took fd_lookup. Signals to this
	 * thread wait until the load is done (a few ms). */
	sigset_t all, old_mask;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old_mask);
	err = capture_bpf__load(l->skel);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	if (err) {
		/* libbpf's own hint for EPERM ("try raising ulimit -l") is misleading here: memory
		 * is charged to the memory cgroup (reference/bpf.md pitfall 1). */
		if (err == -EPERM)
			fail(e, err, "load",
			     "the kernel refused the BPF programs (strategy %s): root without "
			     "CAP_BPF / CAP_PERFMON, kernel lockdown, or a program type this "
			     "kernel forbids",
			     espan_strategy_name(strategy));
		else
			fail(e, err, "load",
			     "the verifier or BTF relocation rejected a program (strategy %s)",
			     espan_strategy_name(strategy));
		goto cleanup;
	}

	l->rb = ring_buffer__new(bpf_map__fd(l->skel->maps.events), on_sample, l, NULL);
	if (!l->rb) {
		fail(e, -errno, "ring buffer", "cannot set up the ring buffer consumer");
		goto cleanup;
	}

	/* Read-only view of the consumer and producer positions, for stats().ringUsed. A
	 * read-only mapping of a ring buffer map is allowed at any offset and length. */
	l->ring_pos_len = 2 * l->page;
	void *pos = mmap(NULL, l->ring_pos_len, PROT_READ, MAP_SHARED,
			 bpf_map__fd(l->skel->maps.events), 0);
	l->ring_pos = pos == MAP_FAILED ? NULL : pos;

	if (o->run_stats && espan_set_run_stats(l, true) < 0) {
		fail(e, -errno, "enable stats", "bpf_enable_stats(BPF_STATS_RUN_TIME) failed");
		goto cleanup;
	}
	return l;

cleanup:
	loader_free(l);
	return NULL;
}

struct espan_loader *espan_open(const struct espan_opts *o, struct espan_error *e)
{
	memset(e, 0, sizeof(*e));
	log_reset();
	if (check_system(e))
		return NULL;

	int strategy = o->strategy;
	if (strategy != ESPAN_STRATEGY_AUTO)
		return open_strategy(o, strategy, e);

	/* auto: tp_btf, else fd_lookup, keeping why tp_btf did not load (its tracepoints absent, or
	 * the load refused): the agent says it, since fd_lookup costs every syscall on the host. */
	struct espan_loader *l = open_strategy(o, ESPAN_STRATEGY_TP_BTF, e);
	if (l)
		return l;
	char why[sizeof(((struct espan_loader *)0)->fallback)];
	snprintf(why, sizeof(why), "%s", e->msg); /* "step: ERRNO: what" */
	log_reset();
	memset(e, 0, sizeof(*e));
	l = open_strategy(o, ESPAN_STRATEGY_FD_LOOKUP, e);
	if (l)
		snprintf(l->fallback, sizeof(l->fallback), "%s", why);
	return l;
}

/* ---- attach ------------------------------------------------------------------------------- */

static void detach_all(struct espan_loader *l)
{
	for (int i = 0; i < l->nlinks; i++)
		bpf_link__destroy(l->links[i]);
	l->nlinks = 0;
}

int espan_attach(struct espan_loader *l, struct espan_error *e)
{
	struct bpf_program *prog;
	char step[96];

	memset(e, 0, sizeof(*e));
	log_reset();
	if (l->nlinks)
		return 0;
	bpf_object__for_each_program(prog, l->skel->obj)
	{
		if (!bpf_program__autoload(prog))
			continue;
		const char *sec = bpf_program__section_name(prog);
		struct bpf_link *link = bpf_program__attach(prog);
		if (!link || l->nlinks == MAX_LINKS) {
			int err = link ? -E2BIG : -errno;
			bpf_link__destroy(link);
			detach_all(l);
			snprintf(step, sizeof(step), "attach %s", bpf_program__name(prog));
			if (err == -ENOENT && strncmp(sec, "tracepoint/", 11) == 0)
				return fail(e, err, step,
					    "tracepoint %s is absent: no /sys/kernel/tracing/events/%s "
					    "(kernel without it, or tracefs not mounted)",
					    sec + 11, sec + 11);
			return fail(e, err, step, "cannot attach %s", sec);
		}
		l->links[l->nlinks++] = link;
	}
	return 0;
}

void espan_detach(struct espan_loader *l)
{
	detach_all(l);
}

bool espan_attached(const struct espan_loader *l)
{
	return l->nlinks > 0;
}

void espan_close(struct espan_loader *l)
{
	loader_free(l);
}

/* ---- knobs -------------------------------------------------------------------------------- */

int espan_strategy(const struct espan_loader *l)
{
	return l->strategy;
}

const char *espan_strategy_fallback(const struct espan_loader *l)
{
	return l->fallback[0] ? l->fallback : NULL;
}

const char *espan_strategy_name(int strategy)
{
	switch (strategy) {
	case ESPAN_STRATEGY_TP_BTF:
		return "tp_btf";
	case ESPAN_STRATEGY_FD_LOOKUP:
		return "fd_lookup";
	default:
		return "auto";
	}
}

int espan_pid_set(struct espan_loader *l, uint32_t tgid, uint32_t flags)
{
	return bpf_map_update_elem(bpf_map__fd(l->skel->maps.pids), &tgid, &flags, BPF_ANY);
}

int espan_pid_del(struct espan_loader *l, uint32_t tgid)
{
	int err = bpf_map_delete_elem(bpf_map__fd(l->skel->maps.pids), &tgid);
	return err == -ENOENT ? 0 : err; /* the kernel drops pids at exit on its own */
}

void espan_set_trace_all(struct espan_loader *l, bool on)
{
	l->skel->bss->trace_all = on;
}

uint32_t espan_set_capture_bytes(struct espan_loader *l, uint32_t n)
{
	if (n > ESPAN_MAX_CAPTURE)
		n = ESPAN_MAX_CAPTURE;
	l->skel->data->capture_bytes = n;
	return n;
}

void espan_set_wakeup_bytes(struct espan_loader *l, uint32_t n)
{
	l->skel->data->wakeup_bytes = n;
}

void espan_set_every_chunk(struct espan_loader *l, bool on)
{
	l->skel->bss->every_chunk = on;
}

/* Run-time stats cost two clock reads per program run, so they are on only when asked. */
int espan_set_run_stats(struct espan_loader *l, bool on)
{
	if (on && l->stats_fd < 0) {
		int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
		if (fd < 0)
			return fd;
		l->stats_fd = fd;
	} else if (!on && l->stats_fd >= 0) {
		close(l->stats_fd);
		l->stats_fd = -1;
	}
	return 0;
}

/* ---- consuming ---------------------------------------------------------------------------- */

int espan_poll_fd(const struct espan_loader *l)
{
	return ring_buffer__epoll_fd(l->rb);
}

int espan_drain(struct espan_loader *l, uint8_t *arena, size_t arena_size, size_t *used,
		uint32_t *count, bool *process_records)
{
	if (arena_size < MAX_FRAME)
		return -EINVAL;
	*process_records = false;
	if (*used + MAX_FRAME > arena_size) {
		l->arena_full++;
		return 1; /* no room for the largest record: hand the arena over first */
	}
	l->arena = arena;
	l->arena_size = arena_size;
	l->used = *used;
	l->count = 0;
	l->process_records = false;
	int n = ring_buffer__consume(l->rb);
	*used = l->used;
	*count += l->count;
	*process_records = l->process_records;
	l->records += l->count;
	if (l->count)
		l->batches++;
	if (n == -ENOSPC) {
		l->arena_full++;
		return 1;
	}
	return n < 0 ? n : 0;
}

int espan_read_stats(struct espan_loader *l, struct espan_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->records = l->records;
	s->batches = l->batches;
	s->arena_full = l->arena_full;
	s->run_stats = l->stats_fd >= 0;
	s->ring_size = bpf_map__max_entries(l->skel->maps.events);
	if (l->ring_pos) {
		unsigned long cons = l->ring_pos[0];
		unsigned long prod = l->ring_pos[l->page / sizeof(unsigned long)];
		s->ring_used = prod - cons;
	}

	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return ncpu;
	uint64_t *vals = calloc(ncpu, sizeof(uint64_t));
	if (!vals)
		return -ENOMEM;
	uint64_t sums[ESPAN_CNT_MAX] = {0};
	int fd = bpf_map__fd(l->skel->maps.counters);
	for (uint32_t k = 0; k < ESPAN_CNT_MAX; k++) {
		if (bpf_map_lookup_elem(fd, &k, vals))
			continue;
		for (int c = 0; c < ncpu; c++)
			sums[k] += vals[c];
	}
	free(vals);
	s->drops = sums[ESPAN_CNT_DROPS];
	s->no_payload = sums[ESPAN_CNT_NO_PAYLOAD];
	s->close_unseen = sums[ESPAN_CNT_CLOSE_UNSEEN];
	return 0;
}

int espan_prog_stats(struct espan_loader *l, struct espan_prog_stat *out, int max)
{
	struct bpf_program *prog;
	int n = 0;
	bpf_object__for_each_program(prog, l->skel->obj)
	{
		if (!bpf_program__autoload(prog) || n >= max)
			continue;
		struct bpf_prog_info info;
		uint32_t len = sizeof(info);
		memset(&info, 0, sizeof(info));
		/* bpf_prog_get_info_by_fd is libbpf >= 1.2; Debian 12 has 1.1. */
		if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &info, &len))
			continue;
		out[n].name = bpf_program__name(prog);
		out[n].run_cnt = info.run_cnt;
		out[n].run_time_ns = info.run_time_ns;
		out[n].recursion_misses = info.recursion_misses;
		out[n].verified_insns = info.verified_insns;
		n++;
	}
	return n;
}
