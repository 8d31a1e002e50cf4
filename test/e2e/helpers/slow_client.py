"""HTTP/1.0 client that reads the response late, in one recv: by then the server has sent all
of it and closed, so that single read also consumes the FIN (the case where copied_seq moves
one past the data; reference/bpf.md pitfall 2). It peeks first: a MSG_PEEK read moves no data
and no seq, and must give no record.

usage: slow_client.py HOST PORT PATH DELAY_MS
"""
import socket
import sys
import time

host, port, path, delay = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
with socket.socket(family, socket.SOCK_STREAM) as s:
    s.connect((host, port))
    s.sendall(f"GET {path} HTTP/1.0\r\nHost: test\r\n\r\n".encode())
    time.sleep(delay / 1000)
    peeked = s.recv(64, socket.MSG_PEEK)
    data = s.recv(1 << 20)
    assert data.startswith(peeked)
    while s.recv(1 << 20):
        pass
    print(data.split(b"\r\n", 1)[0].decode())
