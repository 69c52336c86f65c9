import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { ROOT } from "../helpers/processes";
import { useStack } from "../helpers/suite";

/**
 * A runner seen moments ago (its dispatcher restarting) is waited for a few seconds instead of the
 * request getting a 409. "Moments ago" is judged by PostgreSQL's clock, which stamped last_seen_at:
 * a gateway whose clock was ahead took every such runner for long gone and failed the CI step.
 */
describe("the wait for a runner that was connected moments ago", () => {
  const suite = useStack();

  it("holds on a gateway whose clock is two minutes ahead", async () => {
    const { stack } = suite;
    const fx = await createFixture();
    await testPrisma().$executeRaw`UPDATE servers SET last_seen_at = now() - interval '1 second' WHERE id = ${fx.server.id}::uuid`;
    const ahead = await stack.startGatewayProcess({ NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_SKEW_MS: "120000" });
    const answer = fetch(`${ahead.url}/api/automation/v1/reboot`, {
      method: "POST",
      headers: { Authorization: `Bearer ${fx.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ server_id: fx.server.id }),
    });
    // The runner is back a moment later (presence as its dispatcher writes it; nothing behind it runs the reboot).
    await new Promise((resolve) => setTimeout(resolve, 1000));
    await stack.redis.set(stack.keys.runnerPresence(fx.server.id), "test/none", "EX", 60);
    const res = await answer;
    expect({ status: res.status, body: (await res.json()) as unknown }).toMatchObject({ status: 202, body: { status: "running" } });
  });
});
