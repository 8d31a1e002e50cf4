"""HTTP/1.1 keep-alive client that moves its bytes with the vectored calls: request 1 by
sendmsg and its response by recvmsg, request 2 by writev and its response by readv. The
capture takes a vectored call's payload from its first iovec (ESPAN_F_IOV). Prints each
response's status line.

usage: iov_client.py HOST PORT
"""
import os
import socket
import sys


def response(recv):
    data = b""
    while b"\r\n\r\n" not in data:
        data += recv()
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(v) for k, _, v in (line.partition(b":") for line in head.split(b"\r\n")) if k.lower() == b"content-length")
    while len(body) < length:
        body += recv()
    return head.split(b"\r\n", 1)[0].decode()


def by_recvmsg(s):
    return lambda: s.recvmsg(1 << 16)[0]


def by_readv(s):
    def recv():
        buf = bytearray(1 << 16)
        return bytes(buf[: os.readv(s.fileno(), [buf])])
    return recv


host, port = sys.argv[1], int(sys.argv[2])
with socket.create_connection((host, port)) as s:
    s.sendmsg([b"GET /iov/sendmsg HTTP/1.1\r\n", b"Host: test\r\n\r\n"])
    print(response(by_recvmsg(s)))
    os.writev(s.fileno(), [b"GET /iov/writev HTTP/1.1\r\n", b"Host: test\r\n\r\n"])
    print(response(by_readv(s)))
