import net from "node:net";
import { testRedisUrl } from "../helpers/env";
import { freePort, waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";

/** An exec answered "running" (the gateway holds it 1 s), for its live log to be followed. */
async function running(suite: ReturnType<typeof useStackWithRunner>, command: string): Promise<string> {
  const res = await suite.stack
    .api()
    .post("/api/automation/v1/exec")
    .set("Authorization", `Bearer ${suite.fx.token}`)
    .send({ server_id: suite.fx.server.id, command, timeout_seconds: 120 });
  expect(res.body.status).toBe("running");
  return res.body.operation_id as string;
}

/** Opens the live log on a raw connection; `read: false` reads nothing, ever (its window shuts). */
function openStream(url: string, token: string, read: boolean): { socket: net.Socket; text: () => string; closed: Promise<void> } {
  const { hostname, port, pathname } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let text = "";
  socket.write(`GET ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nAuthorization: Bearer ${token}\r\nAccept: text/event-stream\r\n\r\n`);
  if (read) socket.on("data", (chunk: Buffer) => void (text += chunk.toString("utf8")));
  else socket.pause();
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  socket.on("error", () => undefined);
  return { socket, text: () => text, closed };
}

describe("live log streams when a peer stalls", () => {
  describe("a client that stops reading", () => {
    // One stream per key, so that a stuck one is seen in its key's slot; given up after 2 s without reading.
    const suite = useStackWithRunner({ gateway: { EXEC_MAX_WAIT_SECONDS: "1", LOGS_MAX_STREAMS_PER_KEY: "1", LOGS_CLIENT_STALL_SECONDS: "2" } });

    it("is cut off, freeing its key's slot, once it has read nothing for LOGS_CLIENT_STALL_SECONDS", async () => {
      // More than the connection's buffers hold, then quiet: the stream waits on the client, not on output.
      const id = await running(suite, "head -c 6000000 /dev/zero | tr '\\0' x; sleep 60");
      const url = `${suite.stack.url}/api/automation/v1/operations/${id}/logs`;
      const stuck = openStream(url, suite.fx.token, false);
      /** The status another stream of the key is answered with (it is closed once its headers are in). */
      const slotTaken = async () => {
        const other = openStream(url, suite.fx.token, true);
        await waitFor(async () => /^HTTP\/1.1 \d+/.test(other.text()) || null, 5_000, "an answer");
        other.socket.destroy();
        return Number(other.text().slice(9, 12));
      };
      await waitFor(async () => (await slotTaken()) === 429 || null, 10_000, "the stuck stream to hold the key's slot");
      // Its slot is free again once it is cut off: a reading client gets the stream.
      await waitFor(async () => (await slotTaken()) === 200 || null, 20_000, "the stuck stream's slot to be freed");
      stuck.socket.destroy();
      await suite.stack.api().post(`/api/automation/v1/operations/${id}/cancel`).set("Authorization", `Bearer ${suite.fx.token}`);
    }, 60_000);
  });

  describe("a Redis that stops answering the stream's reads", () => {
    /** In front of Redis: a connection that sends XREAD gets no more replies, though it stays open. */
    const swallowing: net.Socket[] = [];
    const proxy = net.createServer((client) => {
      const upstream = net.connect(Number(new URL(testRedisUrl()).port || 6379), new URL(testRedisUrl()).hostname);
      let swallow = false;
      client.on("data", (chunk: Buffer) => {
        if (/xread/i.test(chunk.toString("latin1"))) swallow = true;
        upstream.write(chunk);
      });
      upstream.on("data", (chunk: Buffer) => void (swallow ? undefined : client.write(chunk)));
      for (const [a, b] of [[client, upstream], [upstream, client]] as const) {
        a.on("error", () => b.destroy());
        a.on("close", () => b.destroy());
      }
      swallowing.push(client);
    });
    const suite = useStackWithRunner(async () => {
      const port = await freePort();
      await new Promise<void>((resolve) => proxy.listen(port, "127.0.0.1", resolve));
      return { gateway: { EXEC_MAX_WAIT_SECONDS: "1", REDIS_URL: `redis://127.0.0.1:${port}` } };
    });
    afterAll(() => {
      for (const s of swallowing) s.destroy();
      proxy.close();
    });

    it("ends the stream (without `end`: the client resumes or polls) instead of sending keep-alives for good", async () => {
      const id = await running(suite, "echo hello; sleep 2; echo bye");
      const stream = openStream(`${suite.stack.url}/api/automation/v1/operations/${id}/logs`, suite.fx.token, true);
      const started = Date.now();
      // The answer's last chunk: the gateway ended the stream (the connection may stay open, kept alive).
      await waitFor(async () => stream.text().endsWith("\r\n0\r\n\r\n") || null, 30_000, "the end of the stream");
      stream.socket.destroy();
      expect(stream.text()).toMatch(/^HTTP\/1.1 200/);
      expect(stream.text()).not.toMatch(/event: end/);
      // Its read bound is 1 s of BLOCK + 5 s.
      expect(Date.now() - started).toBeLessThan(15_000);
    }, 60_000);
  });
});
