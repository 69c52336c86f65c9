import { testRedisUrl } from "../helpers/env";
import { createFixture } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { ReplyDropProxy } from "../helpers/reply-drop-proxy";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** A stack of its own whose every Redis connection goes through a ReplyDropProxy: once it swallows a reply, that connection is spent. */
function useStackBehindProxy(): { stack: () => TestStack; proxy: () => ReplyDropProxy } {
  let proxy: ReplyDropProxy;
  const suite = useStack(async () => {
    proxy = new ReplyDropProxy(Number(new URL(testRedisUrl()).port || 6379));
    await proxy.listen();
    return { redisUrl: `redis://127.0.0.1:${proxy.port}` };
  });
  // After the stack has stopped: its cleanup reaches Redis through the proxy.
  afterAll(() => proxy.close());
  return { stack: () => suite.stack, proxy: () => proxy };
}

/**
 * Redis that stops answering on a connection that still looks open (a
 * partition, a failover leaving a half-open socket): a request waiting on it
 * gets a 503 in seconds instead of hanging for as long as the socket lives.
 */
describe("a Redis connection that stops answering", () => {
  const { stack, proxy } = useStackBehindProxy();

  it("answers a request waiting on it with 503 and Retry-After within seconds", async () => {
    const fx = await createFixture();
    // The key's first request goes to Redis for its rate limit: from then on that connection hears nothing back.
    proxy().arm(fx.key.id, 120_000);
    const started = Date.now();
    const res = await stack().api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "true" });
    expect(proxy().delivered).toBe(true);
    expect(res.status).toBe(503);
    expect(res.body.detail).toMatch(/temporarily unavailable/);
    expect(res.headers["retry-after"]).toBeDefined();
    expect(Date.now() - started).toBeLessThan(10_000);
  }, 30_000);

  it("still sends a replaced runner connection away, with its ticket, when the ticket's write is not answered", async () => {
    const fx = await createFixture();
    const port = stack().dispatcherPorts[0] as number;
    const connect = async () => {
      const socket = scriptedRunner(port, fx.runnerToken);
      await untilConnected(socket);
      return socket;
    };
    const older = await connect();
    const told: { resultsTicket?: string }[] = [];
    older.on("runner:replaced", ((info: { resultsTicket?: string }) => told.push(info)) as never);
    await stack().waitRunnerConnected(fx.server.id);
    // The dispatcher's write of the older connection's results ticket reaches Redis; its answer never comes back.
    proxy().arm(`results-ticket:${fx.server.id}`, 120_000);
    let newer: ScriptedSocket | undefined;
    try {
      const started = Date.now();
      newer = await connect();
      await waitFor(async () => !older.connected, 10_000, "the older connection to be sent away");
      expect(proxy().delivered).toBe(true);
      // After a bounded wait for the write (2 s), not for as long as the connection hangs.
      expect(Date.now() - started).toBeLessThan(5000);
      expect(told).toEqual([{ resultsTicket: expect.stringMatching(/^[A-Za-z0-9_-]{32}$/), sig: expect.any(String) }]);
      expect(newer.connected).toBe(true);
    } finally {
      older.disconnect();
      newer?.disconnect();
    }
  }, 30_000);
});

describe("a dispatcher's Redis connection that stops answering while it admits a runner", () => {
  const { stack, proxy } = useStackBehindProxy();

  it("admits it all the same after a bounded wait, instead of for as long as the connection hangs", async () => {
    const fx = await createFixture();
    // The presence write reaches Redis; its answer, and every later one on that connection, never comes back.
    proxy().arm(`:runner:${fx.server.id}`, 120_000);
    const socket = scriptedRunner(stack().dispatcherPorts[0] as number, fx.runnerToken);
    try {
      await untilConnected(socket);
      const dispatcher = stack().dispatchers[0];
      const logged = (message: string) => (dispatcher?.output ?? "").split("\n").some((l) => l.includes(`"message":"${message}"`) && l.includes(fx.server.id));
      await waitFor(async () => logged("runner connected"), 6000, "the dispatcher to log the runner connected");
      expect(proxy().delivered).toBe(true);
      expect(logged("presence write failed")).toBe(true);
      expect(socket.connected).toBe(true);
    } finally {
      socket.disconnect();
    }
  }, 30_000);
});


describe("a runner connection admitted while the dispatcher's Redis does not answer", () => {
  const { stack, proxy } = useStackBehindProxy();

  it("is not sent away in favour of a numbered one, nor sends it away: which is newer is not known", async () => {
    const fx = await createFixture();
    const port = stack().dispatcherPorts[0] as number;
    const replaced: string[] = [];
    const connect = async (name: string) => {
      const socket = scriptedRunner(port, fx.runnerToken);
      socket.on("runner:replaced", (() => replaced.push(name)) as never);
      await untilConnected(socket);
      return socket;
    };
    // Numbered: perhaps a connection whose network broke and that the dispatcher has not dropped yet.
    const numbered = await connect("numbered");
    await stack().waitRunnerConnected(fx.server.id);
    // The next admission number reaches Redis; its answer, and every later one on that connection, never comes back.
    proxy().arm("runner-admissions", 60_000);
    let unnumbered: ScriptedSocket | undefined;
    try {
      unnumbered = await connect("unnumbered");
      const dispatcher = stack().dispatchers[0];
      const logged = (message: string) => (dispatcher?.output ?? "").split("\n").some((l) => l.includes(`"message":"${message}`) && l.includes(fx.server.id));
      // Numbering times out (2 s), is asked again before the lookup (2 s), and the lookup finds the numbered
      // one: the pair is left alone, and looked at again later (5 s on).
      await waitFor(async () => logged("found other connections of this runner while this one has no admission number"), 15_000, "the dispatcher to leave the pair alone");
      await new Promise((r) => setTimeout(r, 1000));
      expect(proxy().delivered).toBe(true);
      expect(logged("could not number a runner connection")).toBe(true);
      expect(replaced).toEqual([]);
      expect({ numbered: numbered.connected, unnumbered: unnumbered.connected }).toEqual({ numbered: true, unnumbered: true });
    } finally {
      numbered.disconnect();
      unnumbered?.disconnect();
    }
  }, 30_000);
});
