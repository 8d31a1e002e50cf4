// A Node HTTP service of the testbed: one event loop does all socket I/O. CommonJS on purpose:
// with `--require ./otel.cjs` the OpenTelemetry SDK's HTTP instrumentation patches `http` as it
// is required (the documented way for CommonJS apps), and this same file is the
// OTel-instrumented service; without it, it is a plain, uninstrumented Node service.
//
// GET /<flow>/<id> calls every upstream listed for <flow> in TB_CALLS, one after the other, as
// GET <upstream>/<flow>/<id> (keep-alive agent), then answers 200 with a small JSON body. A flow
// with no upstreams is a leaf. Without the SDK it forwards no trace headers.
//
// usage: node [--require otel.cjs] nodesvc.cjs BIND_ADDR PORT
// env:   TB_CALLS, TB_NAME as pysvc.py. Prints "READY <port>" once listening.
"use strict";
const http = require("http");

const [addr, port] = [process.argv[2], Number(process.argv[3])];
const CALLS = JSON.parse(process.env.TB_CALLS || "{}");
const NAME = process.env.TB_NAME || "nodesvc";
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

function call(base, path) {
  const u = new URL(base);
  return new Promise((resolve) => {
    const req = http.get({ host: u.hostname, port: Number(u.port || 80), path, agent, timeout: 10_000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => {
      process.stderr.write(`${NAME}: ${base}${path}: ${e.message}\n`);
      resolve(599);
    });
  });
}

const server = http.createServer(async (req, res) => {
  const parts = req.url.split("/");
  const flow = parts.length > 2 ? parts[1] : "";
  // A little work before the calls, so that concurrent requests interleave on the loop.
  await new Promise((r) => setTimeout(r, Math.floor(Math.random() * 4)));
  const called = [];
  for (const base of CALLS[flow] || []) called.push(await call(base, req.url));
  const status = called.every((s) => s === 200) ? 200 : 502;
  const body = JSON.stringify({ svc: NAME, path: req.url, upstreams: called }) + "\n";
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
});
server.keepAliveTimeout = 30_000;
server.listen(port, addr, () => process.stdout.write(`READY ${server.address().port}\n`));
for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    server.close();
    agent.destroy();
    process.exit(0); // the SDK's spans are on disk already (otel.cjs writes each as it ends)
  });
}
