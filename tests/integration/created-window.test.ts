import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { testPrisma } from "../helpers/db";
import { createFixture, createOperation } from "../helpers/factories";
import { ROOT } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

const DAY = 86_400_000;

/**
 * created_from / created_before on GET /api/v1/audit-events, GET /api/v1/operations and
 * GET /api/automation/v1/operations: [from, before), so that windows one after
 * the other (an export per day) take every record exactly once.
 */
describe("lists within a created_at window", () => {
  const suite = useStack({ dispatchers: 0 });
  let stack: TestStack;
  let fx: Fixture;
  // Midnight UTC a few days ago: recent enough that no retention pass of another suite's dispatcher deletes it.
  const day0 = new Date(Math.floor(Date.now() / DAY) * DAY - 4 * DAY);
  const at = (ms: number) => new Date(day0.getTime() + ms);
  const dateOnly = (d: Date) => d.toISOString().slice(0, 10);
  // Either side of each window's edges, to the millisecond.
  const instants = [at(-1), at(0), at(12 * 3_600_000), at(DAY - 1), at(DAY), at(DAY + 3_600_000)];
  const events: Record<string, string> = {};
  const ops: Record<string, string> = {};

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
    for (const createdAt of instants) {
      const e = await testPrisma().auditEvent.create({ data: { tenantId: fx.tenant.id, type: "export.probe", createdAt } });
      events[createdAt.toISOString()] = e.id;
      const op = await createOperation(fx.tenant.id, fx.server.id, { createdAt, automationKeyId: fx.key.id, status: "completed", exitCode: 0 });
      ops[createdAt.toISOString()] = op.id;
    }
  });

  const get = (path: string, token: string) => stack.api().get(path).set("Authorization", `Bearer ${token}`);
  const q = (params: Record<string, string>) => `?${new URLSearchParams(params).toString()}`;
  const auditIds = async (params: Record<string, string>) => {
    const res = await get(`/api/v1/audit-events${q({ type: "export.probe", ...params })}`, fx.apiKey);
    expect(res.status).toBe(200);
    return { ids: (res.body.data as { id: string }[]).map((e) => e.id), next: res.body.next_cursor as string | null };
  };
  const idsAt = (map: Record<string, string>, ...dates: Date[]) => dates.map((d) => map[d.toISOString()]);

  it("audit events: consecutive windows take each event once, edges included at the start and left out at the end", async () => {
    const first = await auditIds({ created_from: dateOnly(at(0)), created_before: dateOnly(at(DAY)) });
    expect(first.ids).toEqual(idsAt(events, at(DAY - 1), at(12 * 3_600_000), at(0)));
    const second = await auditIds({ created_from: dateOnly(at(DAY)), created_before: dateOnly(at(2 * DAY)) });
    expect(second.ids).toEqual(idsAt(events, at(DAY + 3_600_000), at(DAY)));
    // One bound alone; the same instant written with an offset.
    expect((await auditIds({ created_before: at(0).toISOString() })).ids).toEqual(idsAt(events, at(-1)));
    expect((await auditIds({ created_from: `${dateOnly(at(DAY))}T02:00:00+02:00` })).ids).toEqual(idsAt(events, at(DAY + 3_600_000), at(DAY)));
    expect((await auditIds({})).ids).toHaveLength(instants.length);
    // To the millisecond, and early years are years (not 1900 + them).
    expect((await auditIds({ created_from: at(DAY - 1).toISOString(), created_before: at(DAY).toISOString() })).ids).toEqual(idsAt(events, at(DAY - 1)));
    expect((await auditIds({ created_from: "0050-01-01", created_before: at(0).toISOString() })).ids).toEqual(idsAt(events, at(-1)));
  });

  it("audit events: a window is paginated like the whole list", async () => {
    const window = { created_from: at(0).toISOString(), created_before: at(DAY).toISOString(), limit: "2" };
    const page1 = await auditIds(window);
    expect(page1.ids).toEqual(idsAt(events, at(DAY - 1), at(12 * 3_600_000)));
    const page2 = await auditIds({ ...window, cursor: page1.next ?? "" });
    expect(page2).toEqual({ ids: idsAt(events, at(0)), next: null });
  });

  it("operations, in the management API and the Automation API's list, take the same window", async () => {
    const window = { created_from: dateOnly(at(0)), created_before: dateOnly(at(DAY)), output: "false" };
    const expected = idsAt(ops, at(DAY - 1), at(12 * 3_600_000), at(0));
    const management = await get(`/api/v1/operations${q(window)}`, fx.apiKey);
    expect(management.status).toBe(200);
    expect(management.body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual(expected);
    const automation = await get(`/api/automation/v1/operations${q(window)}`, fx.token);
    expect(automation.status).toBe(200);
    expect(automation.body.data.map((o: { operation_id: string }) => o.operation_id)).toEqual(expected);
    const paged = await get(`/api/automation/v1/operations${q({ ...window, limit: "2" })}`, fx.token);
    const rest = await get(`/api/automation/v1/operations${q({ ...window, limit: "2", cursor: paged.body.next_cursor as string })}`, fx.token);
    expect(rest.body).toMatchObject({ data: [{ operation_id: expected[2] }], next_cursor: null });
  });

  it("the export script of docs/keys.md writes each event of its window once, across pages", async () => {
    const script = /```sh\n(from=\$\{FROM[\s\S]*?)```/.exec(readFileSync(path.join(ROOT, "docs/keys.md"), "utf8"))?.[1];
    if (!script) throw new Error("docs/keys.md has no export script starting with from=${FROM...");
    // A busy day (more than two pages of 200), with an event on either side of it.
    const day2 = at(2 * DAY);
    const busy = Array.from({ length: 450 }, (_, i) => ({ tenantId: fx.tenant.id, type: "export.bulk", createdAt: new Date(day2.getTime() + i * 1_000) }));
    await testPrisma().auditEvent.createMany({ data: [...busy, { tenantId: fx.tenant.id, type: "export.bulk", createdAt: at(3 * DAY) }] });
    const dir = mkdtempSync(path.join(tmpdir(), "rb-export-"));
    try {
      // Not spawnSync: the gateway answering the script runs in this process.
      await promisify(execFile)("sh", ["-euc", script], {
        timeout: 60_000,
        cwd: dir,
        env: { PATH: process.env.PATH, FROM: dateOnly(day2), BEFORE: dateOnly(at(3 * DAY)), RUNBRIDGE_URL: stack.url, RUNBRIDGE_GENERAL_KEY: fx.apiKey },
      });
      const lines = readFileSync(path.join(dir, `audit-events-${dateOnly(day2)}.jsonl`), "utf8").trim().split("\n");
      const exported = lines.map((l) => JSON.parse(l) as { id: string; type: string; created_at: string });
      const inWindow = await testPrisma().auditEvent.findMany({ where: { tenantId: fx.tenant.id, createdAt: { gte: day2, lt: at(3 * DAY) } }, select: { id: true } });
      expect(inWindow).toHaveLength(450);
      expect(exported).toHaveLength(450);
      expect(new Set(exported.map((e) => e.id))).toEqual(new Set(inWindow.map((e) => e.id)));
      expect(exported[0]).toMatchObject({ type: "export.bulk", created_at: new Date(day2.getTime() + 449_000).toISOString() });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ["a time without a zone (it would be read in the server's)", { created_from: "2026-11-01T10:00:00" }, /"created_from" must be an ISO 8601 date-time with a time zone/],
    ["words", { created_before: "yesterday" }, /"created_before" must be an ISO 8601 date-time/],
    ["an hour that does not exist", { created_from: "2026-11-01T24:00:00Z" }, /"created_from" must be an ISO 8601/],
    ["a day that does not exist", { created_from: "2026-02-30" }, /"created_from" names a day that does not exist \(2026-02-30\)/],
    ["a fraction finer than the records' milliseconds", { created_before: "2026-11-01T00:00:00.0009Z" }, /"created_before" must be an ISO 8601/],
    ["an empty window", { created_from: "2026-11-02", created_before: "2026-11-02" }, /"created_before" must be later than "created_from"/],
    ["a reversed window", { created_from: "2026-11-02T00:00:00Z", created_before: "2026-11-01T23:59:59Z" }, /"created_before" must be later than "created_from"/],
  ])("refuses %s with a 422 naming the parameter, on every list", async (_what, params, detail) => {
    for (const [path, token] of [
      ["/api/v1/audit-events", fx.apiKey],
      ["/api/v1/operations", fx.apiKey],
      ["/api/automation/v1/operations", fx.token],
    ] as const) {
      const res = await get(`${path}${q(params)}`, token);
      expect({ path, status: res.status }).toEqual({ path, status: 422 });
      expect(res.body.detail).toMatch(detail);
    }
  });
});
