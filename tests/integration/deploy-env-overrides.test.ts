import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/**
 * A key allowed only to deploy starts the application's fixed deploy command:
 * its env_overrides must not change how that command's programs start.
 */
describe("POST /api/automation/v1/deploy env_overrides", () => {
  const suite = useStackWithRunner();
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const mgmt = (method: "get" | "post" | "patch", p: string) => stack.api()[method](`/api/v1${p}`).set("Authorization", `Bearer ${fx.apiKey}`);
  const createApp = async (fields: Record<string, unknown>) => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-envguard-"));
    const res = await mgmt("post", "/applications").send({ name: "guarded", server_id: fx.server.id, working_directory: dir, deploy_command: "true", ...fields });
    expect(res.status).toBe(201);
    return { app: res.body as { id: string }, dir };
  };

  describe("allowed_env_overrides in the management API", () => {
    it("is null unless set, and round-trips through create, read, list and update", async () => {
      const { app: plain } = await createApp({});
      expect(plain).toMatchObject({ allowed_env_overrides: null });

      const { app } = await createApp({ allowed_env_overrides: ["LOG_LEVEL", "FEATURE_*", "GIT_SSH_COMMAND"] });
      expect(app).toMatchObject({ allowed_env_overrides: ["LOG_LEVEL", "FEATURE_*", "GIT_SSH_COMMAND"] });
      expect((await mgmt("get", `/applications/${app.id}`)).body.allowed_env_overrides).toEqual(["LOG_LEVEL", "FEATURE_*", "GIT_SSH_COMMAND"]);
      const listed = (await mgmt("get", "/applications")).body.data.find((a: { id: string }) => a.id === app.id);
      expect(listed.allowed_env_overrides).toEqual(["LOG_LEVEL", "FEATURE_*", "GIT_SSH_COMMAND"]);

      // A PATCH of other fields keeps it; [] (no overrides) and null (the default rules) are different settings.
      for (const [patch, expected] of [
        [{ deploy_branch: "release" }, ["LOG_LEVEL", "FEATURE_*", "GIT_SSH_COMMAND"]],
        [{ allowed_env_overrides: [] }, []],
        [{ allowed_env_overrides: null }, null],
        [{ allowed_env_overrides: ["APP_*"] }, ["APP_*"]],
      ] as const) {
        const res = await mgmt("patch", `/applications/${app.id}`).send(patch);
        expect([patch, res.status, res.body.allowed_env_overrides]).toEqual([patch, 200, expected]);
        expect((await mgmt("get", `/applications/${app.id}`)).body.allowed_env_overrides).toEqual(expected);
      }
      const row = await testPrisma().application.findUniqueOrThrow({ where: { id: plain.id } });
      expect(row.allowedEnvOverrides).toBeNull();

      // Each change of it is in the audit trail with the new value.
      const audit = await testPrisma().auditEvent.findMany({ where: { tenantId: fx.tenant.id, type: { in: ["application.created", "application.updated"] } }, orderBy: { createdAt: "asc" } });
      const mine = audit.filter((e) => (e.data as { application_id?: string }).application_id === app.id).map((e) => e.data);
      expect(mine).toEqual([
        expect.objectContaining({ allowed_env_overrides: ["LOG_LEVEL", "FEATURE_*", "GIT_SSH_COMMAND"] }),
        expect.not.objectContaining({ allowed_env_overrides: expect.anything() }),
        expect.objectContaining({ changes: ["allowed_env_overrides"], allowed_env_overrides: [] }),
        expect.objectContaining({ changes: ["allowed_env_overrides"], allowed_env_overrides: null }),
        expect.objectContaining({ changes: ["allowed_env_overrides"], allowed_env_overrides: ["APP_*"] }),
      ]);
    });

    it("refuses bad entries with 422 naming the entry, on create and on update", async () => {
      const { app } = await createApp({ allowed_env_overrides: ["KEEP"] });
      const base = { name: "x", server_id: fx.server.id, working_directory: "/srv/x", deploy_command: "true" };
      for (const [value, detail] of [
        [["OK", "1BAD"], /^"allowed_env_overrides\[1\]" must be a variable name \(letters, digits and _, not starting with a digit\), optionally ending in \* for a prefix$/],
        [["*"], /^"allowed_env_overrides\[0\]" must be a variable name/],
        [["FEATURE_*_X"], /^"allowed_env_overrides\[0\]" must be a variable name/],
        [["has space"], /^"allowed_env_overrides\[0\]" must be a variable name/],
        [["RUNBRIDGE_COMMIT_REF"], /^"allowed_env_overrides\[0\]" cannot be allowed: RUNBRIDGE_\* variables are set by the platform$/],
        [["runbridge_*"], /^"allowed_env_overrides\[0\]" cannot be allowed: RUNBRIDGE_\*/],
        [["A", "A"], /^"allowed_env_overrides\[1\]" lists A twice$/],
        [[7], /^"allowed_env_overrides\[0\]" must be a string$/],
        ["LOG_LEVEL", /^"allowed_env_overrides" must be an array$/],
        [Array.from({ length: 201 }, (_, i) => `K${i}`), /^"allowed_env_overrides" has more than 200 entries$/],
      ] as const) {
        const created = await mgmt("post", "/applications").send({ ...base, allowed_env_overrides: value });
        expect([value, created.status, created.body.detail]).toEqual([value, 422, expect.stringMatching(detail)]);
        const patched = await mgmt("patch", `/applications/${app.id}`).send({ allowed_env_overrides: value });
        expect([value, patched.status, patched.body.detail]).toEqual([value, 422, expect.stringMatching(detail)]);
      }
      expect((await mgmt("get", `/applications/${app.id}`)).body.allowed_env_overrides).toEqual(["KEEP"]);
    });
  });
});
