"""Keep-alive HTTP/1.1 test server: thread per connection (ThreadingHTTPServer), several
requests per connection. Prints "PORT <n>" once listening.

usage: ka_server.py HOST PORT [--dual-stack]
  HOST with a ':' binds IPv6; --dual-stack also accepts IPv4 as v4-mapped (::ffff:a.b.c.d).
  GET /pad/<n> answers n bytes of body; any other GET answers "ok <path>".
"""
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/pad/"):
            body = b"x" * int(self.path[5:])
        else:
            body = f"ok {self.path}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    dual_stack = False

    def server_bind(self):
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if self.dual_stack else 1)
        super().server_bind()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    if ":" in host:
        Server.address_family = socket.AF_INET6
    Server.dual_stack = "--dual-stack" in sys.argv
    srv = Server((host, port), Handler)
    print(f"PORT {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
