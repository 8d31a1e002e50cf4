"""Threaded HTTP proxy (ThreadingHTTPServer: one thread per connection). For GET /x it calls
the backend's GET /backend/x on the handler thread (a new connection each time), then answers.
Prints "PORT <n>" once listening.

usage: proxy.py BACKEND_PORT [--forward] [--call-after-response]
  --forward              send the incoming traceparent on the outgoing request
  --call-after-response  answer first, then (on the same thread) make an unrelated call to
                         GET /late/x: the stale-entry case
"""
import http.client
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

backend = int(sys.argv[1])
forward = "--forward" in sys.argv
after = "--call-after-response" in sys.argv


def call(path, headers):
    conn = http.client.HTTPConnection("127.0.0.1", backend, timeout=10)
    conn.request("GET", path, headers=headers)
    body = conn.getresponse().read()
    conn.close()
    return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        headers = {}
        if forward and self.headers.get("traceparent"):
            headers["traceparent"] = self.headers["traceparent"]
        if not after:
            body = call("/backend" + self.path, headers)
        else:
            body = b"answered\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if after:
            time.sleep(0.2)
            call("/late" + self.path, {})

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
print(f"PORT {srv.server_address[1]}", flush=True)
srv.serve_forever()
