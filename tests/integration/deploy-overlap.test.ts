import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/**
 * Deploys of one application never overlap, even when the platform has ended one that is still running:
 * a runner frozen (or cut off) past its result grace has its deploy failed as runner lost, which lets the
 * next deploy go — while the first goes on running on the server. The runner refuses the next one
 * (retryably) until its own copy of the first has ended.
 */
describe("a deploy the platform ended while its runner still runs it", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  it("holds the application's next deploy until it has ended on the server", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-overlap-"));
    const log = path.join(dir, "deploys.log");
    const lines = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);
    const app = await stack
      .api()
      .post("/api/v1/applications")
      .set("Authorization", `Bearer ${fx.apiKey}`)
      .send({ name: "overlap", server_id: fx.server.id, working_directory: dir, deploy_command: `echo "start $RUNBRIDGE_COMMIT_REF" >> ${log}; sleep 4; echo "end $RUNBRIDGE_COMMIT_REF" >> ${log}` });
    expect(app.status).toBe(201);
    const deploy = (ref: string) => stack.api().post("/api/automation/v1/deploy").set("Authorization", `Bearer ${fx.token}`).send({ application_id: app.body.id, commit_ref: ref });

    const first = await deploy("a");
    expect(first.status).toBe(202);
    await waitFor(async () => lines().includes("start a"), 15_000, "the first deploy to start");
    // As the overdue sweep ends it when its runner looks lost: the row ends, the command runs on.
    await testPrisma().operation.update({ where: { id: first.body.operation_id }, data: { status: "failed", error: "runner lost (set by the test)", completedAt: new Date() } });

    const second = await deploy("b");
    expect(second.status).toBe(202);
    expect(await waitUntilEnded(second.body.operation_id, 30_000)).toMatchObject({ status: "completed", exitCode: 0 });
    expect(lines()).toEqual(["start a", "end a", "start b", "end b"]);
  });
});
