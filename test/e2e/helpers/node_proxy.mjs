// A Node HTTP server that, for each request GET /r/<i>, calls the backend's GET /b/r/<i> and
// answers with its body: all socket I/O of both sides on one event-loop thread. Prints
// "PORT <n>" once listening.
//
// usage: node node_proxy.mjs BACKEND_PORT [--forward]
//   --forward  send the incoming traceparent on the outgoing request (app context propagation)
import http from "node:http";

const backendPort = Number(process.argv[2]);
const forward = process.argv.includes("--forward");
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

const server = http.createServer((req, res) => {
  const headers = forward && req.headers.traceparent ? { traceparent: req.headers.traceparent } : {};
  // A little work before the call, as a handler would do, so requests interleave.
  setTimeout(() => {
    http
      .get({ host: "127.0.0.1", port: backendPort, path: `/b${req.url}`, headers, agent }, (up) => {
        const chunks = [];
        up.on("data", (c) => chunks.push(c));
        up.on("end", () => {
          const body = Buffer.concat(chunks);
          res.writeHead(200, { "content-type": "text/plain", "content-length": body.length });
          res.end(body);
        });
      })
      .on("error", (e) => {
        res.writeHead(502);
        res.end(String(e));
      });
  }, Math.floor(Math.random() * 5));
});
server.keepAliveTimeout = 30_000;
server.listen(0, "127.0.0.1", () => console.log(`PORT ${server.address().port}`));
