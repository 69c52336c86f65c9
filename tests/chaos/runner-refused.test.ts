import { TokenKind, generateToken } from "@runbridge/common";
import { migrateDeploy } from "../../scripts/src/migrate";
import { useStackBehindBalancer } from "../helpers/balanced-stack";
import { useTestDatabase } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { PrivatePostgres } from "../helpers/private-services";
import { waitFor } from "../helpers/processes";
import { ExecutionLog, report, waitAllTerminal } from "./helpers";

/**
 * A dispatcher that refuses a runner's handshake (its auth middleware cannot
 * reach PostgreSQL) must not leave that runner offline for good: socket.io
 * gives up on a refused socket, so the runner has to try again itself.
 */
describe("chaos: runner refused by the dispatcher's handshake", () => {
  let pg: PrivatePostgres;
  const suite = useStackBehindBalancer(async () => {
    pg = await PrivatePostgres.start();
    expect(await migrateDeploy({ ...process.env, DATABASE_URL: pg.url }, true)).toBe(0);
    await useTestDatabase(pg.url);
    return { databaseUrl: pg.url, gateway: { EXEC_MAX_WAIT_SECONDS: "1" } };
  });
  afterAll(() => pg?.destroy());

  it("reconnects once PostgreSQL is back, and runs the next command", async () => {
    const { stack, lb } = suite;
    const fx = await createFixture();
    const runner = await stack.startRunner(fx.runnerToken, fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: lb.url } });
    pg.down();
    const downAt = Date.now();
    try {
      lb.cutAll();
      await waitFor(async () => (await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))) === 0, 10_000, "the runner to show as disconnected");
      // Several reconnect attempts refused while the store was down, not just the first: the runner keeps trying.
      await waitFor(async () => (runner.output.match(/dispatcher unavailable, retry/g)?.length ?? 0) >= 2, 20_000, "two refused reconnects");
    } finally {
      pg.up();
    }
    const upAt = Date.now();
    await stack.waitRunnerConnected(fx.server.id, 30_000);
    const log = new ExecutionLog();
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: log.command("after-refusal"), timeout_seconds: 30 });
    expect(res.status).toBe(200);
    const results = await waitAllTerminal([res.body.operation_id], 30_000);
    report("runner refused while PostgreSQL was down", { down_ms: upAt - downAt, reconnect_and_exec_ms: Date.now() - upAt });
    expect(results.get(res.body.operation_id)).toMatchObject({ status: "completed", exitCode: 0, stdout: "ran after-refusal\n" });
    expect(log.counts().get("after-refusal")).toBe(1);
    expect(runner.running).toBe(true);
  });

  it("a token the dispatcher does not know: said plainly, retried slowly, and the runner stays up", async () => {
    const { stack } = suite;
    const runner = await stack.startRunner(generateToken(TokenKind.RunnerToken), "00000000-0000-0000-0000-000000000000", { waitConnected: false });
    await runner.waitForOutput(/does not accept this runner's token/);
    await new Promise((r) => setTimeout(r, 3000));
    expect(runner.running).toBe(true);
    expect(runner.output.match(/does not accept this runner's token/g)).toHaveLength(1);
  });
});
