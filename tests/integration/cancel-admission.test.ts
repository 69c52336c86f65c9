import { closeTestPrisma } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
import { scriptedRunner } from "../helpers/scripted-runner";
import { TestStack } from "../helpers/stack";

/**
 * A runner connecting to a dispatcher is admitted only once its older
 * connections have been looked for on every dispatcher (up to 5 s when one does
 * not answer). It read its server's pending cancels as it connected; a cancel
 * published in between must still reach it. (A file of its own: with another
 * stack running in the same process, the look-up did not wait for the stopped
 * dispatcher, and the window this needs was gone.)
 */
describe("cancel while a runner is being admitted", () => {
  afterAll(closeTestPrisma);

  it("gets a cancel to a runner that is still being admitted when it is sent (its older connections being looked for)", async () => {
    const two = await TestStack.start({ dispatchers: 2 });
    const frozen = two.dispatchers[1];
    try {
      const f = await createFixture();
      const op = await createOperation(f.tenant.id, f.server.id, { redisPrefix: two.prefix, dispatchedAt: new Date(), timeoutSeconds: 600 });
      // A dispatcher that does not answer makes the admission's look for older connections wait for it (5 s).
      frozen?.child.kill("SIGSTOP");
      const socket = scriptedRunner(two.dispatcherPorts[0] as number, f.runnerToken);
      const cancels: string[] = [];
      socket.on("operation:cancel", ((req: { operationId: string }, ack: (res: unknown) => void) => {
        cancels.push(req.operationId);
        ack({ ok: true });
      }) as never);
      try {
        await waitFor(async () => socket.connected, 5_000, "the runner's handshake");
        // Connected, its pending cancels read (none yet), and not yet in its server's room.
        await new Promise((r) => setTimeout(r, 300));
        expect(await two.redis.exists(two.keys.runnerPresence(f.server.id))).toBe(0);
        const c = await two.api().post(`/api/automation/v1/operations/${op.id}/cancel`).set("Authorization", `Bearer ${f.token}`);
        expect(c.body).toMatchObject({ cancel_requested: true });
        await waitFor(async () => cancels.includes(op.id), 3_000, "the cancel to reach the runner being admitted");
      } finally {
        socket.disconnect();
      }
    } finally {
      frozen?.child.kill("SIGCONT");
      await two.stop();
    }
  });
});
