import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma, waitUntilEnded } from "../helpers/db";
import { sample } from "../helpers/metrics";
import { waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/**
 * An application whose deploy command logs its start and end (with its commit_ref) around a sleep;
 * its first deploy ("a"), once started, has its row ended as the overdue sweep ends one whose runner
 * looks lost, while the command goes on running on the server; then a second deploy ("b").
 */
async function overlapping(stack: TestStack, fx: Fixture, sleepSeconds: number) {
  const dir = mkdtempSync(path.join(tmpdir(), "rb-overlap-"));
  const log = path.join(dir, "deploys.log");
  const lines = () => (existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : []);
  const app = await stack
    .api()
    .post("/api/v1/applications")
    .set("Authorization", `Bearer ${fx.apiKey}`)
    .send({ name: "overlap", server_id: fx.server.id, working_directory: dir, deploy_command: `echo "start $RUNBRIDGE_COMMIT_REF" >> ${log}; sleep ${sleepSeconds}; echo "end $RUNBRIDGE_COMMIT_REF" >> ${log}` });
  expect(app.status).toBe(201);
  const deploy = (ref: string) => stack.api().post("/api/automation/v1/deploy").set("Authorization", `Bearer ${fx.token}`).send({ application_id: app.body.id, commit_ref: ref });
  const first = await deploy("a");
  expect(first.status).toBe(202);
  await waitFor(async () => lines().includes("start a"), 15_000, "the first deploy to start");
  await testPrisma().operation.update({ where: { id: first.body.operation_id }, data: { status: "failed", error: "runner lost (set by the test)", completedAt: new Date() } });
  const second = await deploy("b");
  expect(second.status).toBe(202);
  return { lines, second: second.body.operation_id as string };
}

/**
 * Deploys of one application never overlap, even when the platform has ended one that is still running:
 * a runner frozen (or cut off) past its result grace has its deploy failed as runner lost, which lets the
 * next deploy go — while the first goes on running on the server. The runner refuses the next one
 * (retryably) until its own copy of the first has ended.
 */
describe("a deploy the platform ended while its runner still runs it", () => {
  const suite = useStackWithRunner();

  it("holds the application's next deploy until it has ended on the server", async () => {
    const { lines, second } = await overlapping(suite.stack, suite.fx, 4);
    expect(await waitUntilEnded(second, 30_000)).toMatchObject({ status: "completed", exitCode: 0 });
    expect(lines()).toEqual(["start a", "end a", "start b", "end b"]);
  });
});

describe("a deploy its connected runner refuses for later until the delivery deadline", () => {
  const suite = useStackWithRunner({ gateway: { RUNNER_DELIVERY_TIMEOUT_SECONDS: "3" } });

  it("fails saying the runner asked for it later, and why — not that the runner was offline", async () => {
    const { lines, second } = await overlapping(suite.stack, suite.fx, 12);
    const ended = await waitUntilEnded(second, 20_000);
    expect(ended.status).toBe("failed");
    expect(ended.error).toContain("runner was connected but asked for it later until its delivery deadline passed");
    expect(ended.error).toContain("an earlier deploy of this application is still running on this server");
    expect(ended.error).not.toContain("runner offline");
    expect(lines()).toEqual(["start a"]);
    const scrape = await fetch(`http://127.0.0.1:${suite.stack.dispatcherPorts[0]}/metrics`);
    expect(sample(await scrape.text(), "runbridge_dispatcher_operations_finished_total", { status: "failed", type: "deploy", reason: "runner_deferred" })).toBe(1);
  });
});
