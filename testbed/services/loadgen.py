"""The testbed's traffic driver: a long-lived client process (so that the host's agent has
selected it before its first request), told what to send one phase at a time on stdin.

Each stdin line is a JSON phase:
  {"phase": "chain", "target": "http://10.77.0.11:8080", "flow": "chain",
   "ids": ["c-0", "c-1", ...], "concurrency": 4, "keepalive": true, "traceparent": false}
Requests GET <target>/<flow>/<id> go out from `concurrency` worker threads; with keepalive each
worker reuses one connection for all its requests (closed at the end of the phase), else every
request has its own connection. With traceparent, each request carries a fresh W3C context
(sampled), as an instrumented client would: its trace id and parent span id are reported.
For each phase one JSON line is printed:
  {"phase": ..., "results": [{"id": ..., "status": 200, "trace_id": ..., "parent_id": ...}, ...]}
An "exit" line (or EOF) ends the process. Prints "READY" at start.
"""
import http.client
import json
import queue
import secrets
import sys
import threading
from urllib.parse import urlsplit


def run_phase(p):
    u = urlsplit(p["target"])
    todo = queue.Queue()
    for i in p["ids"]:
        todo.put(i)
    results = []
    lock = threading.Lock()

    def worker():
        conn = None
        while True:
            try:
                rid = todo.get_nowait()
            except queue.Empty:
                break
            r = {"id": rid}
            headers = {}
            if p.get("traceparent"):
                r["trace_id"] = secrets.token_hex(16)
                r["parent_id"] = secrets.token_hex(8)
                headers["traceparent"] = f"00-{r['trace_id']}-{r['parent_id']}-01"
            if not p.get("keepalive"):
                headers["Connection"] = "close"
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=15)
                conn.request("GET", f"/{p['flow']}/{rid}", headers=headers)
                res = conn.getresponse()
                res.read()
                r["status"] = res.status
                if res.will_close or not p.get("keepalive"):
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - reported per request
                r["status"] = 0
                r["error"] = str(e)
                if conn is not None:
                    conn.close()
                conn = None
            with lock:
                results.append(r)
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(max(1, int(p.get("concurrency", 1))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    order = {rid: n for n, rid in enumerate(p["ids"])}
    results.sort(key=lambda r: order[r["id"]])
    return results


def main():
    print("READY", flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if line == "exit":
            break
        p = json.loads(line)
        print(json.dumps({"phase": p.get("phase", ""), "results": run_phase(p)}), flush=True)


if __name__ == "__main__":
    main()
