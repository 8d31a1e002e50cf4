/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The kernel -> agent record, defined once (libbpf-bootstrap style: the .bpf.c and the native
 * loader both include this file; JS reads the offsets from the addon's layout(), never copies
 * them by hand).
 *
 * A record is a fixed 120-byte header followed by cap_len bytes of payload (the first bytes the
 * syscall moved). Records have a variable size: the ring buffer sample is header + cap_len.
 *
 * Byte order: every integer is in the host's order (little-endian on x86-64 and arm64), except
 * laddr/raddr, which are in network order exactly as the kernel keeps them (IPv4: the first 4
 * bytes, the rest zero; IPv6, v4-mapped included: all 16 bytes). Ports are host order.
 *
 * Only fixed-width types, every field naturally aligned, padding explicit: the layout is the
 * same for clang -target bpf and for gcc on the host.
 */
#ifndef ESPAN_RECORD_H
#define ESPAN_RECORD_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Upper bound of the runtime capture_bytes knob. 4 KB because a JWT or a long URL pushes
 * `traceparent` past byte 256 (reference/bpf.md section 5: it ended at byte 853 with a JWT). */
#define ESPAN_MAX_CAPTURE 4096
/* Exec records carry the executable path as payload, cut at this length. */
#define ESPAN_MAX_PATH 256
#define ESPAN_COMM_LEN 16

enum espan_kind {
	ESPAN_KIND_DATA = 1,  /* first chunk of a message: the direction flipped on the socket */
	ESPAN_KIND_CLOSE = 2, /* the socket reached TCP_CLOSE; prev_* = its last message */
	ESPAN_KIND_EXEC = 3,  /* a process called execve; payload = filename, aux = parent tgid */
	ESPAN_KIND_EXIT = 4,  /* the last thread of a process exited; aux = exit code */
	ESPAN_KIND_FORK = 5,  /* a child inherited tracing from its parent; aux = parent tgid */
};

enum espan_dir {
	ESPAN_DIR_NONE = 0,
	ESPAN_DIR_SEND = 1,
	ESPAN_DIR_RECV = 2,
};

/* Socket role, from tp_btf/inet_sock_set_state: ->SYN_SENT = client (connect()ed),
 * SYN_RECV->ESTABLISHED = server (accepted). Unknown for sockets that existed before the
 * agent attached. */
enum espan_role {
	ESPAN_ROLE_UNKNOWN = 0,
	ESPAN_ROLE_CLIENT = 1,
	ESPAN_ROLE_SERVER = 2,
};

/* Record flags. */
#define ESPAN_F_FIN        0x0001 /* this read also consumed the peer's FIN (seq corrected) */
#define ESPAN_F_TRUNCATED  0x0002 /* cap_len < bytes: the payload is cut */
#define ESPAN_F_NO_PAYLOAD 0x0004 /* no user buffer known for this syscall (sendfile, io_uring) */
#define ESPAN_F_CONT       0x0008 /* every_chunk mode: not a direction flip, a later chunk */
#define ESPAN_F_FD_LOOKUP  0x0010 /* seq taken by strategy 2 (fd -> sock at sys_enter) */
#define ESPAN_F_IOV        0x0020 /* payload from the first iovec only (readv, writev, sendmsg, recvmsg) */

/* Values of the pid filter map (tgid -> flags). */
#define ESPAN_PID_TRACE   0x1 /* trace this process */
#define ESPAN_PID_INHERIT 0x2 /* children forked from it are traced too (with these flags) */
#define ESPAN_PID_EXCLUDE 0x4 /* never trace, even with trace_all */

/* Indices of the per-CPU counters map. */
enum espan_counter {
	ESPAN_CNT_DROPS = 0,       /* ring buffer full: record lost */
	ESPAN_CNT_NO_PAYLOAD = 1,  /* data event without a matching stash */
	ESPAN_CNT_CLOSE_UNSEEN = 2, /* TCP_CLOSE on a socket with no traced data (no record) */
	ESPAN_CNT_MAX = 3,
};

struct espan_record {
	__u64 ts_ns;         /*   0 bpf_ktime_get_ns(): CLOCK_MONOTONIC, as process.hrtime */
	__u64 conn_id;       /*   8 random id given when the socket was first seen; the struct
	                      *     sock address would not do: the slab reuses it at once */
	__u64 prev_first_ns; /*  16 the message this flip ended (other direction): first chunk */
	__u64 prev_last_ns;  /*  24 ... its last chunk */
	__u64 prev_bytes;    /*  32 ... its byte count; 0 when there was none */
	__u32 pid;           /*  40 tgid */
	__u32 tid;           /*  44 kernel pid of the thread */
	__u32 seq;           /*  48 TCP seq of the first byte of this syscall's data */
	__u32 bytes;         /*  52 bytes the syscall moved (its return value) */
	__u16 cap_len;       /*  56 payload bytes that follow the header */
	__u16 flags;         /*  58 ESPAN_F_* */
	__u8 kind;           /*  60 enum espan_kind */
	__u8 dir;            /*  61 enum espan_dir (close: direction of the last message) */
	__u8 role;           /*  62 enum espan_role */
	__u8 family;         /*  63 AF_INET (2) or AF_INET6 (10); 0 for process events */
	__u16 lport;         /*  64 local port, host order */
	__u16 rport;         /*  66 remote port, host order */
	__u32 aux;           /*  68 exec/fork: parent tgid; exit: exit code; else 0 */
	__u8 laddr[16];      /*  72 local address, network order */
	__u8 raddr[16];      /*  88 remote address, network order */
	char comm[ESPAN_COMM_LEN]; /* 104 thread name (task->comm) */
};                           /* 120 */

#define ESPAN_RECORD_SIZE 120
#ifdef __cplusplus
#define ESPAN_STATIC_ASSERT static_assert /* the addon (C++) includes this file too */
#else
#define ESPAN_STATIC_ASSERT _Static_assert
#endif
ESPAN_STATIC_ASSERT(sizeof(struct espan_record) == ESPAN_RECORD_SIZE, "espan_record must be 120 bytes");
ESPAN_STATIC_ASSERT(sizeof(struct espan_record) % 8 == 0, "espan_record must keep 8-byte alignment");

#endif /* ESPAN_RECORD_H */
