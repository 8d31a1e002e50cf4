// Sends N requests GET /r/<i> with C in flight at a time (each on its own connection), then
// prints "done <ok>". With --traceparent each request carries its own W3C trace id, whose last
// 8 hex digits are i.
//
// usage: node load.mjs PORT N C [--traceparent]
import http from "node:http";

const [port, n, c] = process.argv.slice(2, 5).map(Number);
const withContext = process.argv.includes("--traceparent");
let next = 0;
let ok = 0;

function one(i) {
  return new Promise((resolve) => {
    const headers = withContext ? { traceparent: `00-aaaaaaaaaaaaaaaaaaaaaaaa${i.toString(16).padStart(8, "0")}-bbbbbbbbbbbbbbbb-01` } : {};
    http
      .get({ host: "127.0.0.1", port, path: `/r/${i}`, headers, agent: false }, (res) => {
        res.resume();
        res.on("end", () => {
          if (res.statusCode === 200) ok++;
          resolve();
        });
      })
      .on("error", () => resolve());
  });
}

async function worker() {
  while (next < n) await one(next++);
}

await Promise.all(Array.from({ length: c }, worker));
console.log(`done ${ok}`);
