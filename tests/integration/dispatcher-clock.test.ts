import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { waitUntilEnded } from "../helpers/db";
import { ROOT } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";

/**
 * A dispatcher whose host clock is two minutes ahead. Delivery deadlines are written by PostgreSQL
 * (now() plus the delivery timeout) and must be read against PostgreSQL's clock too: read against
 * this host's, every operation that takes the careful delivery path (a deploy always does) looked
 * past its deadline and failed as runner offline.
 */
describe("a dispatcher whose clock is ahead", () => {
  const suite = useStackWithRunner({ dispatcher: { NODE_OPTIONS: `--require ${path.join(ROOT, "tests/helpers/clock-skew.cjs")}`, TEST_CLOCK_SKEW_MS: "120000" } });

  it("delivers a deploy (its careful path), not failing it as past its delivery deadline", async () => {
    const { stack, fx } = suite;
    const dir = mkdtempSync(path.join(tmpdir(), "rb-clock-"));
    const app = await stack
      .api()
      .post("/api/v1/applications")
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ name: "clocked", server_id: fx.server.id, working_directory: dir, deploy_command: "echo deployed" });
    expect(app.status).toBe(201);
    const res = await stack.api().post("/api/automation/v1/deploy").set("Authorization", `Bearer ${fx.token}`).send({ application_id: app.body.id });
    expect(res.status).toBe(202);
    const done = await waitUntilEnded(res.body.operation_id, 20_000, "the deploy to end");
    expect(done).toMatchObject({ status: "completed", exitCode: 0, stdout: "deployed\n" });
  });
});
