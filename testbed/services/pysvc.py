"""A threaded Python HTTP service of the testbed (ThreadingHTTPServer: one thread per incoming
connection, HTTP/1.1 keep-alive). Uninstrumented: it knows nothing of tracing and forwards no
trace headers.

GET /<flow>/<id> calls, one after the other on the handler thread, every upstream listed for
<flow> in TB_CALLS, as GET <upstream>/<flow>/<id>, over keep-alive connections kept per handler
thread and upstream; then it answers 200 with a small JSON body. A flow with no upstreams is a
leaf. Any failed upstream call makes the answer a 502.

usage: pysvc.py BIND_ADDR PORT
env:   TB_CALLS  JSON {"<flow>": ["http://addr:port", ...], ...}
       TB_NAME   the name written in answers (diagnostics only; the agent names the service
                 from DK_BPFTRACE_SERVICE / DD_SERVICE / OTEL_SERVICE_NAME)
Prints "READY <port>" once listening.
"""
import http.client
import json
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

CALLS = json.loads(os.environ.get("TB_CALLS", "{}"))
NAME = os.environ.get("TB_NAME", "pysvc")
local = threading.local()


def upstream(base):
    """This thread's keep-alive connection to an upstream."""
    conns = getattr(local, "conns", None)
    if conns is None:
        conns = local.conns = {}
    conn = conns.get(base)
    if conn is None:
        u = urlsplit(base)
        conn = conns[base] = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=10)
    return conn


def call(base, path):
    for attempt in (0, 1):
        conn = upstream(base)
        try:
            conn.request("GET", path)
            res = conn.getresponse()
            body = res.read()
            if res.will_close:
                conn.close()
                local.conns.pop(base, None)
            return res.status, body
        except (http.client.HTTPException, OSError):
            # The upstream closed an idle keep-alive connection: reconnect once.
            conn.close()
            local.conns.pop(base, None)
            if attempt == 1:
                raise
    raise RuntimeError("unreachable")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        parts = self.path.split("/")
        flow = parts[1] if len(parts) > 2 else ""
        status = 200
        called = []
        for base in CALLS.get(flow, []):
            try:
                st, _ = call(base, self.path)
            except Exception as e:  # noqa: BLE001 - any failure is a 502 to the caller
                st = 599
                sys.stderr.write(f"{NAME}: {base}{self.path}: {e}\n")
            called.append(st)
            if st != 200:
                status = 502
        # A little work, so that concurrent requests overlap.
        time.sleep(random.random() * 0.003)
        body = json.dumps({"svc": NAME, "path": self.path, "upstreams": called}).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    srv = Server((addr, port), Handler)
    print(f"READY {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
