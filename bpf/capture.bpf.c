// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * espan capture: one record per message start on a TCP socket (the direction flipped), with the
 * TCP seq of the message's first byte, the socket tuple and up to 4 KB of payload; plus close,
 * exec, fork and exit events. CO-RE: vmlinux.h comes from the running kernel's BTF.
 *
 * Why tracepoints only: on our kernels kprobes are absent and fentry/fexit are refused (EPERM
 * before the verifier runs). Syscall tracepoints, tp_btf and ring buffers work
 * (reference/bpf.md section 1).
 *
 * Two ways to get the seq, chosen by the loader before load (autoload + the fd_lookup rodata
 * knob), so a test can run both on the same traffic and check that they agree:
 *  1. tp_btf/sock_send_length, tp_btf/sock_recv_length (kernel >= 6.3): they fire after the data
 *     moved, in the caller's context. seq = write_seq - ret (send), copied_seq - ret (recv), one
 *     less again when the read consumed the peer's FIN. Payload from the user buffer named by
 *     the syscall's own arguments, which the kernel saved in the task's pt_regs at syscall
 *     entry: no sys_enter program, so no syscall tracepoint is enabled at all.
 *  2. fd lookup (older kernels with BTF, 5.10-6.2): at sys_enter, fd -> struct sock through
 *     task->files with CO-RE reads, write_seq / copied_seq read before the call; sys_exit emits.
 *
 * Why strategy 1 has no sys_enter programs (it stashed the buffer there until this change):
 * an enabled syscall tracepoint sends every syscall of every task on the host through the
 * tracing slow path, and its program ran for every read and write on the host, sockets or
 * not, traced or not; each traced message paid an LRU hash update at sys_enter and a lookup
 * and delete at the tp_btf program. Measured with bench/agent.ts on a server doing ~300 us of
 * work per request: 8.3 program runs and 10.2 us of BPF per request, of which the sys_enter
 * programs were 4.1 runs and 3.9 us.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "record.h"

/* Not in vmlinux.h (macros, not BTF types). */
#define AF_INET 2
#define AF_INET6 10
#define MSG_PEEK 2
#define RCV_SHUTDOWN 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000

/* Scratch slots: one per program family that may run concurrently on one CPU. BPF programs
 * run with migration, not preemption, disabled, so a tp_btf program can interleave with a
 * classic tracepoint program on the same CPU; a program never nests with itself (the kernel
 * counts that as a miss). */
#define SLOT_SEND 0
#define SLOT_RECV 1
#define SLOT_SYSCALL 2
#define NR_SLOTS 3

/* ---- knobs -------------------------------------------------------------------------------- */

/* Set before load (rodata). */
const volatile bool fd_lookup = false; /* strategy 2: resolve fd -> sock at sys_enter */
const volatile __u32 self_tgid = 0;    /* the agent never traces itself */

/* Changed at run time through the skeleton's mmapped .data/.bss. */
__u32 trace_all = 0;
__u32 capture_bytes = 256;         /* clamped to ESPAN_MAX_CAPTURE */
__u32 wakeup_bytes = 1024 * 1024;   /* wake the consumer when this much is pending; 0: per record */
__u32 every_chunk = 0;             /* 1: a record per send/recv, not only per direction flip */

/* ---- maps --------------------------------------------------------------------------------- */

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* the loader may resize before load */
} events SEC(".maps");

/* tgid -> ESPAN_PID_* flags. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u32);
} pids SEC(".maps");

/* Where a syscall's payload is (strategy 1: read from pt_regs at the tp_btf program); for
 * strategy 2 also what sys_enter saw, kept in `stashes` keyed by pid_tgid (one syscall in
 * flight per thread). */
struct stash {
	__u64 buf; /* user buffer: the first iovec for readv/writev/sendmsg/recvmsg */
	__u64 sk;  /* strategy 2: the TCP sock behind the fd, else 0 */
	__u32 len; /* buffer length */
	__u32 nr;  /* syscall number: the stash is valid only inside this syscall */
	__u32 seq; /* strategy 2: write_seq / copied_seq before the call */
	__u8 dir;
	__u8 peek;
	__u8 iov;
	__u8 _pad;
};

/* Strategy 2 only. LRU: a stash of a syscall that never reached a socket (a file read) just
 * ages out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct stash);
} stashes SEC(".maps");

/* Per-socket message state, keyed by the struct sock address. */
struct conn {
	__u64 id;       /* conn_id of the records: the sk address is reused by the slab, this not */
	__u64 first_ns; /* current message: first chunk */
	__u64 last_ns;  /* current message: last chunk */
	__u64 bytes;    /* current message: bytes so far */
	__u32 pid;      /* last traced data event on this socket */
	__u32 tid;
	__u16 lport; /* kept from data events: at TCP_CLOSE the local port is already 0 */
	__u16 rport;
	__u8 dir; /* direction of the current message */
	__u8 role;
	__u8 family;
	__u8 seen; /* a traced data event filled the tuple */
	__u8 laddr[16];
	__u8 raddr[16];
};

/* Strategy 2: keyed by the struct sock address (its programs see the socket as a plain
 * address, not a BTF pointer). The loader shrinks it to one entry for strategy 1. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn);
} conns SEC(".maps");

/* Strategy 1: in the socket's own local storage, reached from the BTF pointer the tp_btf
 * programs get. A lookup is a load from sk->sk_bpf_storage's cache instead of a hash walk
 * (the hash lookups were ~25% of the data programs' run time), the state goes with the
 * socket, and no live connection can be evicted as from an LRU. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn);
} sk_conns SEC(".maps");

/* bpf_ringbuf_reserve needs a constant size; variable-size records are built here and sent with
 * bpf_ringbuf_output (reference/bpf.md pitfall 6). */
struct scratch {
	struct espan_record hdr;
	__u8 data[ESPAN_MAX_CAPTURE];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NR_SLOTS);
	__type(key, __u32);
	__type(value, struct scratch);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ESPAN_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Bytes this CPU wrote to the ring since it last looked at the ring's fill level (wakeup_flag). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} written SEC(".maps");

/* ---- helpers ------------------------------------------------------------------------------ */

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &idx);
	if (v)
		*v += 1;
}

/* The rejection path of every sys_enter on the host: keep it to one hash lookup
 * (~125-160 ns per hit when the pid is not selected, reference/bpf.md section 2). */
static __always_inline __u32 pid_flags(__u32 tgid)
{
	if (tgid == self_tgid)
		return 0;
	__u32 *f = bpf_map_lookup_elem(&pids, &tgid);
	if (f)
		return (*f & ESPAN_PID_EXCLUDE) ? 0 : *f;
	return trace_all ? ESPAN_PID_TRACE : 0;
}

static __always_inline bool pid_traced(__u32 tgid)
{
	return pid_flags(tgid) & ESPAN_PID_TRACE;
}

/* A wake-up per record costs ~30 % of the traced program's throughput (reference/bpf.md
 * pitfall 7). Wake the consumer only when the pending bytes reach wakeup_bytes; its timer
 * collects the rest.
 *
 * The fill level is looked at once per WAKEUP_CHECK_BYTES a CPU has written, not per record:
 * bpf_ringbuf_query reads the consumer's position, a cache line the consumer writes from
 * another CPU, and that miss was ~10% of the data programs' run time (perf on a loopback
 * ping-pong, 3.1 -> 2.8 us of BPF per request with the query gone). A check wakes the consumer
 * when the level is in [wakeup_bytes, 2 * wakeup_bytes): the crossing is seen within one check
 * step per CPU, and a consumer far behind (already busy draining) is not woken again and
 * again. Above that, its timer still collects. */
#define WAKEUP_CHECK_BYTES (16 << 10)

static __always_inline __u64 wakeup_flag(__u64 size)
{
	__u64 thr = wakeup_bytes;
	if (thr == 0)
		return 0; /* kernel default: wake when the consumer has caught up */
	__u32 zero = 0;
	__u64 *since = bpf_map_lookup_elem(&written, &zero);
	if (since) {
		__u64 n = *since + size;
		if (n < WAKEUP_CHECK_BYTES && n < thr) {
			*since = n;
			return BPF_RB_NO_WAKEUP;
		}
		*since = 0;
	}
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) + size;
	return (avail >= thr && avail < 2 * thr) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline bool tcp_inet(struct sock *sk)
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	return proto == IPPROTO_TCP && (family == AF_INET || family == AF_INET6);
}

/* Tuple from the socket. Arrays via bpf_core_read with an explicit size: BPF_CORE_READ_INTO on
 * an array destination copies one byte (reference/bpf.md pitfall 4). */
static __always_inline void fill_tuple(struct conn *c, struct sock *sk)
{
	c->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	c->rport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (c->family == AF_INET) {
		bpf_core_read(c->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(c->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(c->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(c->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	c->seen = 1;
}

static __always_inline void copy_tuple(struct espan_record *r, const struct conn *c)
{
	r->family = c->family;
	r->lport = c->lport;
	r->rport = c->rport;
	__builtin_memcpy(r->laddr, c->laddr, 16);
	__builtin_memcpy(r->raddr, c->raddr, 16);
}

static __always_inline __u64 clamp_capture(__u64 n)
{
	asm volatile("if %[n] <= %[max] goto +1;\n\t"
		     "%[n] = %[max];"
		     : [n] "+r"(n)
		     : [max] "i"(ESPAN_MAX_CAPTURE));
	return n;
}

/* A random 64-bit id per connection: unique in practice (collisions ~ n^2 / 2^65), and cheap in
 * every program type, where the socket cookie helper is not (classic tracepoints). */
static __always_inline __u64 new_conn_id(void)
{
	return ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
}

/* The socket's state; with `create`, a fresh one (a new id, role unknown) when it has none.
 * fd_lookup is rodata: the verifier sees only the branch of the loaded strategy, so the
 * strategy 2 programs, whose sk is a plain address, never reach the sk storage helpers. */
static __always_inline struct conn *conn_find(struct sock *sk, bool create)
{
	struct conn *c;
	if (!fd_lookup) {
		c = bpf_sk_storage_get(&sk_conns, sk, 0, 0);
		if (c || !create)
			return c;
		struct conn fresh = { .id = new_conn_id() };
		return bpf_sk_storage_get(&sk_conns, sk, &fresh, BPF_SK_STORAGE_GET_F_CREATE);
	}
	__u64 key = (__u64)sk;
	c = bpf_map_lookup_elem(&conns, &key);
	if (c || !create)
		return c;
	struct conn fresh = { .id = new_conn_id() };
	bpf_map_update_elem(&conns, &key, &fresh, BPF_NOEXIST);
	return bpf_map_lookup_elem(&conns, &key);
}

/* A new state for the socket (connect or accept), replacing any it had. */
static __always_inline void conn_set(struct sock *sk, const struct conn *fresh)
{
	if (!fd_lookup) {
		struct conn *c = bpf_sk_storage_get(&sk_conns, sk, (void *)fresh,
						    BPF_SK_STORAGE_GET_F_CREATE);
		if (c)
			*c = *fresh;
		return;
	}
	__u64 key = (__u64)sk;
	bpf_map_update_elem(&conns, &key, fresh, BPF_ANY);
}

static __always_inline void conn_del(struct sock *sk)
{
	if (!fd_lookup) {
		bpf_sk_storage_delete(&sk_conns, sk);
		return;
	}
	__u64 key = (__u64)sk;
	bpf_map_delete_elem(&conns, &key);
}

/*
 * A data event on a traced TCP socket. Emits a record only when the direction flips (the first
 * chunk of a request or a response), carrying the stats of the message that just ended.
 * Two CPUs moving data on one socket at the same time could race on the conn state; HTTP/1.x
 * peers don't, and the worst case is a lost or extra flip.
 */
static __always_inline void emit_data(struct sock *sk, __u8 dir, __u32 seq, __u32 ret,
				      const struct stash *s, __u16 flags, __u32 slot)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 id = bpf_get_current_pid_tgid();
	struct conn *c = conn_find(sk, true);
	if (!c)
		return;
	if (!c->seen)
		fill_tuple(c, sk);
	c->pid = id >> 32;
	c->tid = (__u32)id;

	bool flip = c->dir != dir;
	if (!flip && !every_chunk) {
		c->last_ns = now;
		c->bytes += ret;
		return;
	}

	struct scratch *out = bpf_map_lookup_elem(&scratch, &slot);
	if (!out)
		return;
	struct espan_record *r = &out->hdr;
	r->ts_ns = now;
	r->conn_id = c->id;
	if (flip) {
		r->prev_first_ns = c->first_ns;
		r->prev_last_ns = c->last_ns;
		r->prev_bytes = c->bytes;
		c->dir = dir;
		c->first_ns = now;
		c->bytes = ret;
	} else {
		r->prev_first_ns = 0;
		r->prev_last_ns = 0;
		r->prev_bytes = 0;
		c->bytes += ret;
		flags |= ESPAN_F_CONT;
	}
	c->last_ns = now;
	r->pid = id >> 32;
	r->tid = (__u32)id;
	r->seq = seq;
	r->bytes = ret;
	r->kind = ESPAN_KIND_DATA;
	r->dir = dir;
	r->role = c->role;
	r->aux = 0;
	copy_tuple(r, c);
	bpf_get_current_comm(r->comm, sizeof(r->comm));

	__u64 n = 0;
	if (s) {
		n = capture_bytes;
		if (n > ret)
			n = ret;
		if (n > s->len)
			n = s->len;
		if (s->iov)
			flags |= ESPAN_F_IOV;
	} else {
		flags |= ESPAN_F_NO_PAYLOAD;
		count(ESPAN_CNT_NO_PAYLOAD);
	}
	/* The verifier needs a provable bound on the read size (reference/bpf.md pitfall 3);
	 * clamp in asm, else clang 14 bounds a copy and passes the unbounded register. */
	n = clamp_capture(n);
	if (n && s && bpf_probe_read_user(out->data, n, (void *)s->buf))
		n = 0;
	if (n < ret)
		flags |= ESPAN_F_TRUNCATED;
	r->cap_len = n;
	r->flags = flags;

	__u64 size = sizeof(struct espan_record) + n;
	if (bpf_ringbuf_output(&events, out, size, wakeup_flag(size)))
		count(ESPAN_CNT_DROPS);
}

/* ---- strategy 2, sys_enter: the sock, its seq before the call and the user buffer -------- */

/* Strategy 2: fd -> struct sock via task->files->fdt->fd[fd], every hop a CO-RE read. */
static __always_inline struct sock *fd_to_tcp_sock(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *file = NULL;
	bpf_core_read(&file, sizeof(file), &fds[fd]);
	if (!file)
		return NULL;
	umode_t mode = BPF_CORE_READ(file, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	struct socket *sock = BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk || !tcp_inet(sk))
		return NULL;
	return sk;
}

static __always_inline int stash_enter(struct trace_event_raw_sys_enter *ctx, __u8 dir,
				       __u64 buf, __u64 len, __u8 iov, __u64 msg_flags)
{
	struct stash s = {};
	__u64 id = bpf_get_current_pid_tgid();

	if (dir == ESPAN_DIR_RECV && (msg_flags & MSG_PEEK))
		return 0; /* a peek moves no data and no seq */
	s.buf = buf;
	s.len = len > 0xffffffffULL ? 0xffffffff : (__u32)len;
	s.nr = (__u32)ctx->id;
	s.dir = dir;
	s.iov = iov;
	struct sock *sk = fd_to_tcp_sock((int)ctx->args[0]);
	if (!sk)
		return 0; /* not a TCP socket: nothing for sys_exit to do */
	struct tcp_sock *tp = (struct tcp_sock *)sk;
	s.sk = (__u64)sk;
	s.seq = dir == ESPAN_DIR_SEND ? BPF_CORE_READ(tp, write_seq) : BPF_CORE_READ(tp, copied_seq);
	bpf_map_update_elem(&stashes, &id, &s, BPF_ANY);
	return 0;
}

static __always_inline int stash_plain(struct trace_event_raw_sys_enter *ctx, __u8 dir,
				       __u64 flags)
{
	if (!pid_traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	return stash_enter(ctx, dir, ctx->args[1], ctx->args[2], 0, flags);
}

static __always_inline int stash_iovec(struct trace_event_raw_sys_enter *ctx, __u8 dir,
				       const struct iovec *uiov, __u64 flags)
{
	struct iovec iv = {};
	if (!uiov || bpf_probe_read_user(&iv, sizeof(iv), uiov))
		return 0;
	return stash_enter(ctx, dir, (__u64)iv.iov_base, iv.iov_len, 1, flags);
}

static __always_inline int stash_vec(struct trace_event_raw_sys_enter *ctx, __u8 dir)
{
	if (!pid_traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	return stash_iovec(ctx, dir, (const struct iovec *)ctx->args[1], 0);
}

static __always_inline int stash_msg(struct trace_event_raw_sys_enter *ctx, __u8 dir)
{
	if (!pid_traced(bpf_get_current_pid_tgid() >> 32))
		return 0;
	struct user_msghdr m = {};
	if (bpf_probe_read_user(&m, sizeof(m), (void *)ctx->args[1]))
		return 0;
	return stash_iovec(ctx, dir, m.msg_iov, ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_read")
int handle_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return stash_plain(ctx, ESPAN_DIR_RECV, 0);
}

SEC("tracepoint/syscalls/sys_enter_write")
int handle_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return stash_plain(ctx, ESPAN_DIR_SEND, 0);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int handle_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	return stash_plain(ctx, ESPAN_DIR_RECV, ctx->args[3]);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int handle_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return stash_plain(ctx, ESPAN_DIR_SEND, 0);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int handle_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return stash_vec(ctx, ESPAN_DIR_RECV);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int handle_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return stash_vec(ctx, ESPAN_DIR_SEND);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int handle_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	return stash_msg(ctx, ESPAN_DIR_RECV);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int handle_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return stash_msg(ctx, ESPAN_DIR_SEND);
}

/* ---- strategy 1: tp_btf/sock_{send,recv}_length (kernel >= 6.3) --------------------------- */

/* Syscall numbers of the calls whose user buffer the tp_btf programs read (not in vmlinux.h:
 * they are macros of the uapi headers, one table per architecture). */
#if defined(__TARGET_ARCH_x86)
#define NR_READ 0
#define NR_WRITE 1
#define NR_READV 19
#define NR_WRITEV 20
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define SYSCALL_NR(regs) ((regs)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NR_READ 63
#define NR_WRITE 64
#define NR_READV 65
#define NR_WRITEV 66
#define NR_SENDTO 206
#define NR_RECVFROM 207
#define NR_SENDMSG 211
#define NR_RECVMSG 212
#define SYSCALL_NR(regs) ((regs)->syscallno)
#else
#error "syscall numbers: add this architecture's table and syscall-number register"
#endif

/* The payload of the syscall the current task is in, from the arguments the kernel saved at
 * syscall entry (pt_regs: the tp_btf programs run inside that syscall, in its task). Direct
 * loads: bpf_task_pt_regs gives a BTF pointer. False for any other way into the socket
 * (sendfile, splice, sendmmsg, io_uring): the seq is still right, there is no payload. */
static __always_inline bool syscall_payload(struct stash *s)
{
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	long nr = SYSCALL_NR(regs);
	__u64 arg = PT_REGS_PARM2_SYSCALL(regs);
	if (nr == NR_READ || nr == NR_WRITE || nr == NR_RECVFROM || nr == NR_SENDTO) {
		__u64 len = PT_REGS_PARM3_SYSCALL(regs);
		s->buf = arg;
		s->len = len > 0xffffffffULL ? 0xffffffff : (__u32)len;
		return true;
	}
	const struct iovec *uiov;
	if (nr == NR_READV || nr == NR_WRITEV) {
		uiov = (const struct iovec *)arg;
	} else if (nr == NR_RECVMSG || nr == NR_SENDMSG) {
		struct user_msghdr m = {};
		if (bpf_probe_read_user(&m, sizeof(m), (void *)arg))
			return false;
		uiov = m.msg_iov;
	} else {
		return false;
	}
	struct iovec iv = {};
	if (!uiov || bpf_probe_read_user(&iv, sizeof(iv), uiov))
		return false;
	s->buf = (__u64)iv.iov_base;
	s->len = iv.iov_len > 0xffffffffULL ? 0xffffffff : (__u32)iv.iov_len;
	s->iov = 1;
	return true;
}

static __always_inline int on_sock_length(struct sock *sk, int ret, int flags, __u8 dir, __u32 slot)
{
	if (ret <= 0 || (flags & MSG_PEEK))
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	if (!pid_traced(id >> 32))
		return 0;
	/* sk is a BTF pointer here: direct loads (CO-RE relocated, checked by the kernel's
	 * exception table), not a bpf_probe_read_kernel call per field. */
	__u16 family = sk->__sk_common.skc_family;
	if (sk->sk_protocol != IPPROTO_TCP || (family != AF_INET && family != AF_INET6))
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 0;

	__u32 seq;
	__u16 fl = 0;
	if (dir == ESPAN_DIR_SEND) {
		seq = tp->write_seq - (__u32)ret;
	} else {
		__u32 copied = tp->copied_seq;
		seq = copied - (__u32)ret;
		/* A read that also consumed the peer's FIN moved copied_seq one past the data:
		 * without this, about half of HTTP/1.0 responses mismatch (pitfall 2). */
		__u8 shut = BPF_CORE_READ_BITFIELD(sk, sk_shutdown);
		if ((shut & RCV_SHUTDOWN) && copied == tp->rcv_nxt) {
			seq -= 1;
			fl |= ESPAN_F_FIN;
		}
	}

	struct stash s = {};
	bool have = syscall_payload(&s);
	emit_data(sk, dir, seq, (__u32)ret, have ? &s : NULL, fl, slot);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(handle_sock_send, struct sock *sk, int ret, int flags)
{
	return on_sock_length(sk, ret, flags, ESPAN_DIR_SEND, SLOT_SEND);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(handle_sock_recv, struct sock *sk, int ret, int flags)
{
	return on_sock_length(sk, ret, flags, ESPAN_DIR_RECV, SLOT_RECV);
}

/* ---- strategy 2: sys_exit with the seq read at sys_enter ---------------------------------- */

static __always_inline int exit_common(struct trace_event_raw_sys_exit *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct stash *p = bpf_map_lookup_elem(&stashes, &id);
	if (!p)
		return 0;
	struct stash s = *p;
	bpf_map_delete_elem(&stashes, &id);
	long ret = ctx->ret;
	if (s.nr != (__u32)ctx->id || !s.sk || ret <= 0)
		return 0;
	emit_data((struct sock *)s.sk, s.dir, s.seq, (__u32)ret, &s, ESPAN_F_FD_LOOKUP,
		  SLOT_SYSCALL);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_read")
int handle_exit_read(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }
SEC("tracepoint/syscalls/sys_exit_write")
int handle_exit_write(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int handle_exit_recvfrom(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }
SEC("tracepoint/syscalls/sys_exit_sendto")
int handle_exit_sendto(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }
SEC("tracepoint/syscalls/sys_exit_readv")
int handle_exit_readv(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }
SEC("tracepoint/syscalls/sys_exit_writev")
int handle_exit_writev(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int handle_exit_recvmsg(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }
SEC("tracepoint/syscalls/sys_exit_sendmsg")
int handle_exit_sendmsg(struct trace_event_raw_sys_exit *ctx) { return exit_common(ctx); }

/* ---- socket role and close ---------------------------------------------------------------- */

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(handle_set_state, struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;

	if (newstate == TCP_SYN_SENT) {
		/* connect() runs in the caller's context: only traced processes get an entry. */
		if (!pid_traced(bpf_get_current_pid_tgid() >> 32))
			return 0;
		struct conn c = { .id = new_conn_id(), .role = ESPAN_ROLE_CLIENT };
		conn_set(sk, &c);
		return 0;
	}
	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED) {
		/* Runs in softirq (the pid is whoever was interrupted): mark every accepted
		 * socket; states of untraced ones go at close (or with the socket; strategy 2: age
		 * out of the LRU). */
		struct conn c = { .id = new_conn_id(), .role = ESPAN_ROLE_SERVER };
		conn_set(sk, &c);
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;

	struct conn *c = conn_find(sk, false);
	if (!c)
		return 0;
	if (!c->seen) {
		count(ESPAN_CNT_CLOSE_UNSEEN);
		conn_del(sk);
		return 0;
	}
	struct espan_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(ESPAN_CNT_DROPS);
		conn_del(sk);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->ts_ns = bpf_ktime_get_ns();
	r->conn_id = c->id;
	r->prev_first_ns = c->first_ns;
	r->prev_last_ns = c->last_ns;
	r->prev_bytes = c->bytes;
	r->pid = c->pid; /* close may run in softirq: the pid of the last data event */
	r->tid = c->tid;
	r->kind = ESPAN_KIND_CLOSE;
	r->dir = c->dir;
	r->role = c->role;
	copy_tuple(r, c);
	conn_del(sk);
	bpf_ringbuf_submit(r, wakeup_flag(sizeof(*r)));
	return 0;
}

/* ---- processes: exec, inherited fork, exit ------------------------------------------------ */

/* Exec and fork records wake the consumer at once (BPF_RB_FORCE_WAKEUP): the agent selects a
 * new process when it reads its exec record, and a short-lived one (curl) must not be done
 * talking by then. That is what lets the agent drain on a slow timer (250 ms) instead of every
 * 10 ms: a wake-up of the agent's Node process costs ~150 us of CPU on our VMs (a bare C
 * nanosleep loop: ~40 us), so a 10 ms timer alone was 1.5% of a core, ~4.5 us per span at the
 * ~3.3k spans/s of a server doing 300 us of work per request. Exits need no hurry: the kernel
 * already took the pid out of the filter. */
#define PROCESS_WAKEUP BPF_RB_FORCE_WAKEUP

struct exec_record {
	struct espan_record hdr;
	char path[ESPAN_MAX_PATH];
};

/* Every exec on the host, so the agent can select new processes live (by name or env). */
SEC("tracepoint/sched/sched_process_exec")
int handle_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct exec_record *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(ESPAN_CNT_DROPS);
		return 0;
	}
	__u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__builtin_memset(&e->hdr, 0, sizeof(e->hdr));
	e->hdr.ts_ns = bpf_ktime_get_ns();
	e->hdr.pid = id >> 32;
	e->hdr.tid = (__u32)id;
	e->hdr.kind = ESPAN_KIND_EXEC;
	e->hdr.aux = BPF_CORE_READ(task, real_parent, tgid);
	bpf_get_current_comm(e->hdr.comm, sizeof(e->hdr.comm));
	unsigned int off = ctx->__data_loc_filename & 0xFFFF;
	long n = bpf_probe_read_kernel_str(e->path, sizeof(e->path), (void *)ctx + off);
	e->hdr.cap_len = n > 0 ? n - 1 : 0; /* without the NUL */
	bpf_ringbuf_submit(e, PROCESS_WAKEUP);
	return 0;
}

/* A child of a process traced with ESPAN_PID_INHERIT is traced from its first syscall
 * (pre-fork servers: nginx workers, gunicorn), before the agent could react to an event. */
SEC("tp_btf/sched_process_fork")
int BPF_PROG(handle_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (ptgid == ctgid)
		return 0; /* a new thread */
	__u32 *f = bpf_map_lookup_elem(&pids, &ptgid);
	if (!f || !(*f & ESPAN_PID_INHERIT) || (*f & ESPAN_PID_EXCLUDE))
		return 0;
	__u32 flags = *f;
	bpf_map_update_elem(&pids, &ctgid, &flags, BPF_ANY);

	struct espan_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(ESPAN_CNT_DROPS);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->ts_ns = bpf_ktime_get_ns();
	r->pid = ctgid;
	r->tid = BPF_CORE_READ(child, pid);
	r->kind = ESPAN_KIND_FORK;
	r->aux = ptgid;
	BPF_CORE_READ_STR_INTO(&r->comm, child, comm);
	bpf_ringbuf_submit(r, PROCESS_WAKEUP);
	return 0;
}

/* Fires once per thread. The stash of the thread goes; when the last thread is gone
 * (signal->live reached 0 before this tracepoint, whatever the kernel version) the pid leaves
 * the filter, so a recycled pid is not traced by accident, and an exit record is sent. */
SEC("tracepoint/sched/sched_process_exit")
int handle_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	if (fd_lookup)
		bpf_map_delete_elem(&stashes, &id);

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;
	bpf_map_delete_elem(&pids, &tgid);

	struct espan_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		count(ESPAN_CNT_DROPS);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->ts_ns = bpf_ktime_get_ns();
	r->pid = tgid;
	r->tid = (__u32)id;
	r->kind = ESPAN_KIND_EXIT;
	r->aux = BPF_CORE_READ(task, exit_code);
	bpf_get_current_comm(r->comm, sizeof(r->comm));
	bpf_ringbuf_submit(r, wakeup_flag(sizeof(*r)));
	return 0;
}

/* GPL-compatible licence string: bpf_probe_read_* and the ring buffer helpers are GPL-only. */
char LICENSE[] SEC("license") = "Dual BSD/GPL";
