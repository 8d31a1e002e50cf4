"""Keep-alive HTTP/1.1 client: N requests on one connection, then it holds the connection open
(idle) for HOLD seconds before closing. Prints "done" after the last response.

usage: ka_client.py PORT N HOLD
"""
import http.client
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for i in range(n):
    conn.request("GET", f"/ka/{i}")
    conn.getresponse().read()
print("done", flush=True)
time.sleep(hold)
conn.close()
