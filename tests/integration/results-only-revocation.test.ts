import { HandshakeRefusal, ResultsNamespace } from "@runbridge/contracts";
import { testRedisUrl } from "../helpers/env";
import { createFixture } from "../helpers/factories";
import { HoldingProxy } from "../helpers/holding-proxy";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";
import { useStack } from "../helpers/suite";

/**
 * A results-only connection (a replaced runner's last one) is let in after its token is checked and then
 * its ticket is looked up in Redis. A token revoked while Redis answers that lookup sweeps the dispatcher's
 * connections before this one is among them: it must be refused all the same, not left open until the
 * periodic recheck. The dispatcher reaches Redis through a HoldingProxy that holds the ticket lookup's answer
 * while the token is rotated through the management API.
 */
describe("a results-only connection whose token is revoked while its ticket is looked up", () => {
  let proxy: HoldingProxy;
  const suite = useStack(async () => {
    proxy = new HoldingProxy(Number(new URL(testRedisUrl()).port || 6379));
    await proxy.listen();
    return { dispatchers: 0 };
  });
  const open: ScriptedSocket[] = [];
  beforeAll(async () => {
    await suite.stack.startDispatcher({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` });
  });
  afterEach(() => {
    proxy.release();
    for (const s of open.splice(0)) s.disconnect();
  });
  // After the stack has stopped: the dispatcher's cleanup reaches Redis through the proxy.
  afterAll(() => proxy.close());

  it("is refused as soon as the lookup answers, not let in until the recheck", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    const port = stack.dispatcherPorts[0] as number;
    const ticket = `revoked-meanwhile-${fx.server.id.slice(0, 8)}`;
    await stack.redis.set(stack.keys.resultsTicket(fx.server.id, ticket), "1", "EX", 60);

    // The runner that holds the token now, on the same dispatcher: told of the revocation when the dispatcher hears it.
    const main = scriptedRunner(port, fx.runnerToken);
    open.push(main);
    const revokedTold = new Promise<void>((resolve) => main.on("runner:token-revoked", () => resolve()));
    await untilConnected(main);
    await stack.waitRunnerConnected(fx.server.id);

    // The ticket's lookup reaches Redis; its answer is held. On a transport of its own, as a runner's: the other
    // connection's, closed by the revocation, would take this handshake with it.
    proxy.hold([ticket]);
    const results = scriptedRunner(port, fx.runnerToken, { namespace: ResultsNamespace, auth: { resultsTicket: ticket }, forceNew: true });
    open.push(results);
    const outcome = new Promise<string>((resolve) => {
      results.on("connect", () => resolve("connected"));
      results.on("connect_error", ((err: Error) => resolve(err.message)) as never);
    });
    await waitFor(async () => proxy.heldRequests > 0, 10_000, "the dispatcher to look the results ticket up");

    // Rotated meanwhile; the dispatcher hears it (it sends the other connection away) before the lookup answers.
    expect((await stack.api().post(`/api/v1/servers/${fx.server.id}/runner-token`).set("Authorization", `Bearer ${fx.apiKey}`).send()).status).toBe(200);
    await revokedTold;
    const released = Date.now();
    proxy.release();

    // Refused with the token's refusal (the runner stops instead of retrying), seconds after, not 60 s later.
    await expect(outcome).resolves.toBe(HandshakeRefusal.InvalidToken);
    expect(Date.now() - released).toBeLessThan(5000);
    expect(results.connected).toBe(false);
  }, 30_000);
});
