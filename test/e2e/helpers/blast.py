"""Sends COUNT messages of SIZE bytes over one loopback TCP connection inside this process
(a reader thread drains the other end), then prints the bytes received.

usage: blast.py COUNT SIZE
"""
import socket
import sys
import threading

count, size = int(sys.argv[1]), int(sys.argv[2])
lst = socket.socket()
lst.bind(("127.0.0.1", 0))
lst.listen(1)
cli = socket.create_connection(lst.getsockname())
srv, _ = lst.accept()
got = 0


def drain():
    global got
    while True:
        b = srv.recv(1 << 16)
        if not b:
            return
        got += len(b)


t = threading.Thread(target=drain)
t.start()
msg = b"m" * size
for _ in range(count):
    cli.sendall(msg)
cli.close()
t.join()
print(got)
