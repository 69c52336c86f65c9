import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/**
 * The rejection path's floor: a bare node:http server (no framework, no key
 * check) that refuses every request with the gateway's own 401 answer. Run in
 * a process of its own, like the gateway; it reports its port over IPC.
 */
const body = JSON.stringify({ detail: "Invalid API key" });
const server = createServer((_req, res) => {
  res.writeHead(401, {
    "WWW-Authenticate": 'Bearer realm="runbridge"',
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
  });
  res.end(body);
});
server.keepAliveTimeout = 61_000;
server.listen(0, "127.0.0.1", () => process.send?.({ port: (server.address() as AddressInfo).port }));
process.on("disconnect", () => server.close(() => process.exit(0)));
