import { createAutomationKey } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** GET /api/automation/v1/operations?run_id=: a key lists its own operations of a CI run. */
describe("GET /api/automation/v1/operations", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;
  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const exec = (command: string, runId: string, token = fx.token) =>
    stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${token}`).send({ server_id: fx.server.id, command, run_id: runId });
  const list = (query: string, token = fx.token) => stack.api().get(`/api/automation/v1/operations${query}`).set("Authorization", `Bearer ${token}`);

  it("lists one run's operations newest first, paginated, limited to the calling key", async () => {
    const run = `gh-${Date.now()}`;
    const ids: string[] = [];
    for (const cmd of ["echo one", "echo two", "exit 4"]) ids.push((await exec(cmd, run)).body.operation_id as string);
    await exec("echo other run", `${run}-other`);
    const { token: otherKey } = await createAutomationKey(fx.tenant.id);
    await exec("echo other key", run, otherKey);

    const all = await list(`?run_id=${run}`);
    expect(all.status).toBe(200);
    expect(all.body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual([...ids].reverse());
    expect(all.body.next_cursor).toBeNull();
    expect(all.body.data[0]).toMatchObject({ operation_type: "exec", run_id: run, status: "completed", result: { exit_code: 4 }, server_name: fx.server.name });

    const page1 = await list(`?run_id=${run}&limit=2`);
    expect(page1.body.data).toHaveLength(2);
    expect(page1.body.next_cursor).toEqual(expect.any(String));
    const page2 = await list(`?run_id=${run}&limit=2&cursor=${encodeURIComponent(page1.body.next_cursor as string)}`);
    expect(page2.body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual([ids[0]]);
    expect(page2.body.next_cursor).toBeNull();

    const failedOnly = await list(`?run_id=${run}&status=completed&type=exec&server_id=${fx.server.id}`);
    expect(failedOnly.body.data).toHaveLength(3);

    // The other key sees only its own operation of that run.
    const theirs = await list(`?run_id=${run}`, otherKey);
    expect(theirs.body.data).toHaveLength(1);
    expect(theirs.body.data[0].command).toBe("echo other key");
  });

  it("leaves each result's stdout and stderr out with output=false, and keeps everything else", async () => {
    const run = `gh-${Date.now()}-quiet`;
    await exec("echo loud; echo louder >&2; exit 3", run);
    const full = await list(`?run_id=${run}`);
    expect(full.body.data[0].result).toEqual({ exit_code: 3, stdout: "loud\n", stderr: "louder\n", duration_ms: expect.any(Number), stdout_truncated: false, stderr_truncated: false });
    const quiet = await list(`?run_id=${run}&output=false`);
    expect(quiet.status).toBe(200);
    expect(quiet.body.data[0].result).toEqual({ exit_code: 3, duration_ms: expect.any(Number), stdout_truncated: false, stderr_truncated: false });
    const { result: _full, ...rest } = full.body.data[0] as Record<string, unknown>;
    const { result: _quiet, ...quietRest } = quiet.body.data[0] as Record<string, unknown>;
    expect(quietRest).toEqual(rest);
    expect((await list(`?run_id=${run}&output=maybe`)).status).toBe(422);
    // The management API's list (the dashboard's) takes it too.
    const mgmt = await stack.api().get(`/api/v1/operations?run_id=${run}&output=false`).set("Authorization", `Bearer ${fx.apiKey}`);
    expect(mgmt.body.data[0].result).not.toHaveProperty("stdout");
    expect(mgmt.body.data[0].result).toMatchObject({ exit_code: 3 });
  });

  it("lists only what the key's scope still covers once it is narrowed, as reading one by id does", async () => {
    const run = `gh-narrowed-${Date.now()}`;
    const own = await createAutomationKey(fx.tenant.id);
    const id = (await exec("echo before narrowing", run, own.token)).body.operation_id as string;
    expect((await list(`?run_id=${run}`, own.token)).body.data).toHaveLength(1);
    const narrowed = await stack.api().patch(`/api/v1/automation-keys/${own.key.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ allowed_operations: ["restart"] });
    expect(narrowed.status).toBe(200);
    expect((await stack.api().get(`/api/automation/v1/operations/${id}`).set("Authorization", `Bearer ${own.token}`)).status).toBe(403);
    expect((await list(`?run_id=${run}`, own.token)).body.data).toEqual([]);
    expect((await list(`?run_id=${run}&type=exec`, own.token)).body.data).toEqual([]);
    // A created_at window keeps to the scope too.
    expect((await list(`?run_id=${run}&created_from=2000-01-01`, own.token)).body.data).toEqual([]);
    expect((await list(`?created_from=2000-01-01&created_before=2999-01-01`, own.token)).body.data).toEqual([]);
    // Widened again (every operation): listed again.
    await stack.api().patch(`/api/v1/automation-keys/${own.key.id}`).set("Authorization", `Bearer ${fx.apiKey}`).send({ allowed_operations: [] });
    expect((await list(`?run_id=${run}`, own.token)).body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual([id]);
  });

  it("refuses bad filters with 422 naming the field", async () => {
    for (const [query, field] of [
      ["?limit=0", "limit"],
      ["?status=done", "status"],
      ["?cursor=garbage", "cursor"],
      ["?server_id=nope", "server_id"],
      ["?runid=x", "runid"],
    ] as const) {
      const res = await list(query);
      expect(res.status).toBe(422);
      expect(res.body.detail).toContain(field);
    }
  });
});
