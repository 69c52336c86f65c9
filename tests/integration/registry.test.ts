import { randomUUID } from "node:crypto";
import { ConfigError, Sealer, parseConfig } from "@runbridge/common";
import { FailureCause, FailureReason } from "@runbridge/contracts";
import { gatewayEnvSchema } from "../../apps/gateway/src/config";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createServer, createTenant } from "../helpers/factories";
import { FakeDocker } from "../helpers/fake-docker";
import { findLeaks } from "../helpers/leak-scan";
import { startNode, waitFor } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStackWithRunner } from "../helpers/suite";

/** Registry credentials (management API) and registry-auth login/logout through the real stack. */
describe("registry credentials and registry-auth", () => {
  const docker = new FakeDocker();
  /**
   * A retired key, still listed for decryption (by the gateway, which checks a login's credential
   * opens, and the dispatcher, which opens it to deliver the login): credentials sealed with it must keep working.
   */
  const OLD_KEY = Buffer.alloc(32, 3).toString("base64");
  const suite = useStackWithRunner(
    // A short delivery timeout: a logout to a runner that is not there ends within the test. A short
    // hold: a logout's time-out is fitted into it (6 s here).
    { gateway: { RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: OLD_KEY, RUNNER_DELIVERY_TIMEOUT_SECONDS: "3", EXEC_MAX_WAIT_SECONDS: "16" }, dispatcher: { RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: OLD_KEY } },
    { env: { PATH: docker.path } },
  );
  let stack: TestStack;
  let fx: Fixture;

  beforeAll(() => {
    ({ stack, fx } = suite);
  });

  const mgmt = (method: "get" | "post" | "delete", path: string, apiKey = fx.apiKey) => stack.api()[method](`/api/v1${path}`).set("Authorization", `Bearer ${apiKey}`);
  const automation = (path: string, body: Record<string, unknown>, token = fx.token) =>
    stack.api().post(`/api/automation/v1${path}`).set("Authorization", `Bearer ${token}`).send(body);
  const createCredential = async (body: Record<string, unknown>, apiKey = fx.apiKey) => {
    const res = await mgmt("post", "/registry-credentials", apiKey).send({ name: "reg", username: "octo", password: "pw-not-a-secret", ...body });
    expect(res.status).toBe(201);
    return res.body as { id: string; registry_url: string; registry_type: string };
  };
  // Waits on the database (API polling would spend the key's rate limit), then reads the API once.
  const poll = async (id: string, timeoutMs = 15_000) => {
    await waitFor(async () => (await testPrisma().operation.findUniqueOrThrow({ where: { id } })).status !== "running", timeoutMs, `operation ${id} to end`);
    const r = await stack.api().get(`/api/automation/v1/operations/${id}`).set("Authorization", `Bearer ${fx.token}`);
    expect(r.status).toBe(200);
    return r.body;
  };

  describe("management API", () => {
    it("stores a credential, shows url and resolved type, never the password", async () => {
      const password = `pw-${Date.now()}-mgmt-canary`;
      const res = await mgmt("post", "/registry-credentials").send({ name: "ghcr bot", registry_url: "ghcr.io", username: "octo", password });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ id: expect.any(String), name: "ghcr bot", registry_url: "ghcr.io", registry_type: "ghcr", username: "octo" });
      expect(JSON.stringify(res.body)).not.toContain(password);
      const one = await mgmt("get", `/registry-credentials/${res.body.id}`);
      expect(one.body).toMatchObject({ registry_url: "ghcr.io", registry_type: "ghcr" });
      const list = await mgmt("get", "/registry-credentials");
      expect(list.body.data.map((c: { id: string }) => c.id)).toContain(res.body.id);
      expect(JSON.stringify([one.body, list.body])).not.toContain(password);
      // At rest: an AES-256-GCM envelope with the key id beside it, not the password.
      const row = await testPrisma().registryCredential.findUniqueOrThrow({ where: { id: res.body.id } });
      expect(row.passwordCiphertext).toMatch(/^v1\.[0-9a-f]{8}\./);
      expect(row.passwordCiphertext).not.toContain(password);
      expect(res.body.encryption_key_id).toBe(row.passwordCiphertext.split(".")[1]);
    });

    it.each([
      ["ghcr.io", "ghcr"],
      ["https://index.docker.io/v1/", "dockerhub"],
      ["docker.io", "dockerhub"],
      ["123456789012.dkr.ecr.eu-west-1.amazonaws.com", "ecr"],
      ["public.ecr.aws", "ecr"],
      ["eu.gcr.io", "gcr"],
      ["europe-west1-docker.pkg.dev", "gar"],
      ["myregistry.azurecr.io", "acr"],
      ["registry.gitlab.com", "gitlab"],
      ["registry.example.com:5000", "generic"],
    ])("resolves %s to %s", async (url, type) => {
      const cred = await createCredential({ registry_url: url });
      expect(cred).toMatchObject({ registry_url: url, registry_type: type });
    });

    it.each([
      [{ registry_url: "ghcr.io", username: "u" }, /"password" is required/],
      [{ registry_url: "ghcr.io", username: "u", password: "" }, /"password"/],
      [{ registry_url: "ghcr.io", username: "u", password: "two\nlines" }, /"password" cannot contain newlines/],
      [{ registry_url: "-h", username: "u", password: "p" }, /"registry_url"/],
      [{ registry_url: "ghcr.io evil", username: "u", password: "p" }, /"registry_url"/],
      [{ registry_url: "ghcr.io", username: "u", password: "p", extra: 1 }, /"extra" is not allowed/],
    ])("refuses a bad body with 422 naming the field (%#)", async (body, detail) => {
      const res = await mgmt("post", "/registry-credentials").send({ name: "x", ...body });
      expect(res.status).toBe(422);
      expect(res.body.detail).toMatch(detail);
    });

    it("deletes a credential; another tenant cannot see or delete it", async () => {
      const cred = await createCredential({ registry_url: "ghcr.io" });
      const other = await createTenant();
      expect((await mgmt("get", `/registry-credentials/${cred.id}`, other.apiKey)).status).toBe(404);
      expect((await mgmt("delete", `/registry-credentials/${cred.id}`, other.apiKey)).status).toBe(404);
      expect((await mgmt("delete", `/registry-credentials/${cred.id}`)).status).toBe(204);
      const gone = await mgmt("get", `/registry-credentials/${cred.id}`);
      expect(gone.status).toBe(404);
      expect(gone.body.detail).toMatch(/not found/);
    });
  });

  describe("POST /registry-auth/login", () => {
    it("answers 202 at once and runs docker login with the password on stdin only", async () => {
      const password = `ghp_${Date.now()}canaryLoginSecret`;
      const cred = await createCredential({ registry_url: "ghcr.io", username: "octo-bot", password });
      const before = docker.calls().length;
      const res = await automation("/registry-auth/login", {
        server_id: fx.server.id,
        credential_id: cred.id,
        run_id: "gh-run-77",
        run_context: { provider: "github_actions", repository: "org/app" },
      });
      expect(res.status).toBe(202);
      expect(res.body).toEqual({ operation_id: expect.any(String), status: "running", registry_url: "ghcr.io", registry_type: "ghcr" });

      const done = await poll(res.body.operation_id);
      expect(done).toMatchObject({ operation_type: "registry_login", status: "completed", run_id: "gh-run-77" });
      expect(done.result).toMatchObject({ exit_code: 0, stdout: "Login Succeeded\n", stderr: "", duration_ms: expect.any(Number) });

      const calls = docker.calls().slice(before);
      expect(calls).toHaveLength(1);
      expect(calls[0]?.argv).toEqual(["login", "ghcr.io", "--username", "octo-bot", "--password-stdin"]);
      expect(calls[0]?.stdin).toBe(password);

      // Nowhere else: not the record, the audit, the queue, the dump or a log line.
      expect(JSON.stringify(done)).not.toContain(password);
      const audit = await testPrisma().auditEvent.findMany({ where: { operationId: done.operation_id } });
      expect(audit.map((a) => a.type).sort()).toEqual(["operation.created", "operation.finished"]);
      expect(JSON.stringify(audit)).not.toContain(password);
      expect(await findLeaks(stack, password)).toEqual([]);
      // The scan does see what is stored: the operation id is in the dump and the logs.
      expect(await findLeaks(stack, done.operation_id)).toEqual(expect.arrayContaining(["postgres dump", "process logs"]));
    });

    it("is 409 when the server's runner is not connected", async () => {
      const cred = await createCredential({ registry_url: "ghcr.io" });
      const { server } = await createServer(fx.tenant.id);
      const res = await automation("/registry-auth/login", { server_id: server.id, credential_id: cred.id });
      expect(res.status).toBe(409);
      expect(res.body.detail).toMatch(/no connected runner/);
    });

    it("is 404 for another tenant's credential and for an unknown server", async () => {
      const other = await createTenant();
      const foreign = await createCredential({ registry_url: "ghcr.io" }, other.apiKey);
      const res = await automation("/registry-auth/login", { server_id: fx.server.id, credential_id: foreign.id });
      expect(res.status).toBe(404);
      expect(res.body.detail).toMatch(/Registry credential .* not found/);
      const mine = await createCredential({ registry_url: "ghcr.io" });
      const noServer = await automation("/registry-auth/login", { server_id: "00000000-0000-4000-8000-000000000000", credential_id: mine.id });
      expect(noServer.status).toBe(404);
    });

    it("is 403 for a credential outside the key's allowed credentials, or without the registry_login operation", async () => {
      const allowed = await createCredential({ registry_url: "ghcr.io" });
      const other = await createCredential({ registry_url: "ghcr.io" });
      const scoped = await createAutomationKey(fx.tenant.id, { allowedCredentialIds: [allowed.id] });
      const refused = await automation("/registry-auth/login", { server_id: fx.server.id, credential_id: other.id }, scoped.token);
      expect(refused.status).toBe(403);
      expect(refused.body.detail).toMatch(/not in this API key's allowed credentials/);
      const ok = await automation("/registry-auth/login", { server_id: fx.server.id, credential_id: allowed.id }, scoped.token);
      expect(ok.status).toBe(202);
      await poll(ok.body.operation_id);

      const execOnly = await createAutomationKey(fx.tenant.id, { allowedOperations: ["exec", "registry_logout"] });
      const noOp = await automation("/registry-auth/login", { server_id: fx.server.id, credential_id: allowed.id }, execOnly.token);
      expect(noOp.status).toBe(403);
      expect(noOp.body.detail).toMatch(/"registry_login" is not allowed/);
    });

    it.each([
      [{ credential_id: "not-a-uuid" }, /"credential_id"/],
      [{ credential_id: undefined }, /"credential_id" is required/],
      [{ run_id: "x".repeat(256) }, /"run_id"/],
      [{ password: "smuggled" }, /"password" is not allowed/],
    ])("refuses a bad body with 422 (%#)", async (patch, detail) => {
      const cred = await createCredential({ registry_url: "ghcr.io" });
      const res = await automation("/registry-auth/login", { server_id: fx.server.id, credential_id: cred.id, ...patch });
      expect(res.status).toBe(422);
      expect(res.body.detail).toMatch(detail);
    });
  });

  describe("encryption keys", () => {
    const insertSealedWith = async (key: string, password: string) => {
      const id = randomUUID();
      await testPrisma().registryCredential.create({
        data: { id, tenantId: fx.tenant.id, name: "old", registryUrl: "registry.example.com", registryType: "generic", username: "legacy", passwordCiphertext: new Sealer(key).seal(password, id) },
      });
      return id;
    };

    it("opens a credential sealed with a previous key after a rotation", async () => {
      const password = `rotated-${Date.now()}-pw`;
      const id = await insertSealedWith(OLD_KEY, password);
      const before = docker.calls().length;
      const res = await automation("/registry-auth/login", { server_id: fx.server.id, credential_id: id });
      expect(res.status).toBe(202);
      expect(await poll(res.body.operation_id)).toMatchObject({ status: "completed", result: { exit_code: 0 } });
      expect(docker.calls().slice(before)).toEqual([{ argv: ["login", "registry.example.com", "--username", "legacy", "--password-stdin"], stdin: password }]);
    });

    it("answers 409 with what to do, not 500, for a credential sealed with a key it does not have", async () => {
      const unknownKey = Buffer.alloc(32, 9).toString("base64");
      const id = await insertSealedWith(unknownKey, "whatever");
      const res = await automation("/registry-auth/login", { server_id: fx.server.id, credential_id: id });
      expect(res.status).toBe(409);
      expect(res.body.detail).toMatch(/cannot be decrypted .* key id [0-9a-f]{8}.*RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS/);
    });

    it("refuses to boot without a valid RUNBRIDGE_ENCRYPTION_KEY, naming it", async () => {
      const base = { DATABASE_URL: stack.databaseUrl };
      for (const key of [undefined, "not-base64!", Buffer.alloc(16).toString("base64")]) {
        const env = key === undefined ? base : { ...base, RUNBRIDGE_ENCRYPTION_KEY: key };
        expect(() => parseConfig("gateway", gatewayEnvSchema, env)).toThrow(ConfigError);
        expect(() => parseConfig("gateway", gatewayEnvSchema, env)).toThrow(/RUNBRIDGE_ENCRYPTION_KEY/);
      }
      const dispatcher = startNode("apps/dispatcher/dist/main.js", { ...stack.commonEnv(), RUNBRIDGE_ENCRYPTION_KEY: "c2hvcnQ=" });
      const exit = await dispatcher.exited;
      expect(exit.code).toBe(78);
      expect(dispatcher.output).toMatch(/RUNBRIDGE_ENCRYPTION_KEY must be 32 bytes, base64-encoded/);
    });
  });

  describe("POST /registry-auth/logout", () => {
    it("runs docker logout synchronously and answers with the completed operation", async () => {
      const before = docker.calls().length;
      const res = await automation("/registry-auth/logout", { server_id: fx.server.id, registry_url: "ghcr.io", run_id: "gh-run-77" });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({ operation_id: expect.any(String), status: "completed", exit_code: 0, stdout: "Removing login credentials for ghcr.io\n" });
      expect(docker.calls().slice(before).map((c) => c.argv)).toEqual([["logout", "ghcr.io"]]);
      const audit = await testPrisma().auditEvent.findMany({ where: { operationId: res.body.operation_id } });
      expect(audit.map((a) => a.type).sort()).toEqual(["operation.created", "operation.finished"]);
    });

    it("reports a failing logout as HTTP 200, completed, with the non-zero exit code", async () => {
      docker.failWith("logout", 1);
      try {
        const res = await automation("/registry-auth/logout", { server_id: fx.server.id, registry_url: "registry.example.com:5000" });
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ status: "completed", exit_code: 1, stderr: expect.stringMatching(/fake failure of docker logout/) });
      } finally {
        docker.succeed("logout");
      }
    });

    it("times a hung logout out within the request's hold, so it is answered completed with exit code 124, not running", async () => {
      docker.delay("logout", 60);
      try {
        const sent = Date.now();
        const res = await automation("/registry-auth/logout", { server_id: fx.server.id, registry_url: "ghcr.io" });
        const tookMs = Date.now() - sent;
        expect(res.status).toBe(200);
        expect(res.body).toMatchObject({ status: "completed", exit_code: 124 });
        // EXEC_MAX_WAIT_SECONDS 16 less the 10 s left for the kill grace and the way back: a 6 s time-out.
        const row = await testPrisma().operation.findUniqueOrThrow({ where: { id: res.body.operation_id } });
        expect(row.timeoutSeconds).toBe(6);
        expect(tookMs).toBeGreaterThanOrEqual(6000);
        expect(tookMs).toBeLessThan(16_000);
      } finally {
        docker.delay("logout", 0);
      }
    });

    it("answers a logout the platform could not deliver as completed with exit code 125 and the reason on stderr, as polled", async () => {
      // Presence as a dispatcher writes it, but no runner behind it: accepted, never delivered.
      const { server: absent } = await createServer(fx.tenant.id);
      await stack.redis.set(stack.keys.runnerPresence(absent.id), "test/none", "EX", 60);
      const res = await automation("/registry-auth/logout", { server_id: absent.id, registry_url: "ghcr.io" });
      expect(res.status).toBe(200);
      const reason = FailureReason.RunnerOffline;
      expect(res.body).toMatchObject({ status: "completed", exit_code: 125, stdout: "", stderr: `${reason}\n`, error: reason });
      expect(await poll(res.body.operation_id)).toMatchObject({ status: "completed", result: { exit_code: 125, stderr: `${reason}\n` }, error: reason });
      const finished = await testPrisma().auditEvent.findFirstOrThrow({ where: { operationId: res.body.operation_id, type: "operation.finished" } });
      expect(finished.data).toMatchObject({ status: "completed", exit_code: 125, error: reason });
      // Counted as recorded (completed), with the platform's reason; no process counts a failed logout.
      const metrics = [(await stack.api().get("/metrics").expect(200)).text, await (await fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`)).text()].join("\n");
      const logouts = metrics.split("\n").filter((l) => l.startsWith('runbridge_dispatcher_operations_finished_total{') && l.includes('type="registry_logout"'));
      expect(logouts.filter((l) => l.includes('status="failed"'))).toEqual([]);
      expect(logouts.filter((l) => l.includes(`status="completed",type="registry_logout",reason="${FailureCause.RunnerOffline}"`)).map((l) => Number(l.split(" ").pop()))).toEqual([1]);
    });

    it("answers a logout for a server with no runner connected at once, completed with exit code 125 (not the 409 of other operations)", async () => {
      const { server: never } = await createServer(fx.tenant.id);
      const sent = Date.now();
      const res = await automation("/registry-auth/logout", { server_id: never.id, registry_url: "ghcr.io" });
      // Never seen: no reconnect wait, and no delivery deadline to wait out.
      expect(Date.now() - sent).toBeLessThan(2500);
      const reason = FailureReason.RunnerOffline;
      expect({ status: res.status, body: res.body }).toMatchObject({ status: 200, body: { status: "completed", exit_code: 125, stderr: `${reason}\n`, error: reason } });
      expect(await poll(res.body.operation_id)).toMatchObject({ status: "completed", result: { exit_code: 125 }, error: reason });
      const events = await testPrisma().auditEvent.findMany({ where: { operationId: res.body.operation_id }, orderBy: { createdAt: "asc" } });
      expect(events.map((e) => e.type)).toEqual(["operation.created", "operation.finished"]);
      // Never queued: no job for a dispatcher to deliver.
      expect(await stack.gateway.queue.getJob(res.body.operation_id)).toBeUndefined();
    });

    it("refuses a registry_url docker could read as an option, and other bad bodies, with 422", async () => {
      for (const [body, detail] of [
        [{ registry_url: "--help" }, /"registry_url"/],
        [{ registry_url: "ghcr.io; rm -rf /" }, /"registry_url"/],
        [{ registry_url: "x".repeat(501) }, /"registry_url"/],
        [{ registry_url: undefined }, /"registry_url" is required/],
      ] as const) {
        const res = await automation("/registry-auth/logout", { server_id: fx.server.id, ...body });
        expect(res.status).toBe(422);
        expect(res.body.detail).toMatch(detail);
      }
    });

    it("is 403 without the registry_logout operation or outside the key's servers, 404 for an unknown server", async () => {
      const loginOnly = await createAutomationKey(fx.tenant.id, { allowedOperations: ["registry_login"] });
      expect((await automation("/registry-auth/logout", { server_id: fx.server.id, registry_url: "ghcr.io" }, loginOnly.token)).status).toBe(403);
      const { server: otherServer } = await createServer(fx.tenant.id);
      const elsewhere = await createAutomationKey(fx.tenant.id, { allowedServerIds: [otherServer.id] });
      const res = await automation("/registry-auth/logout", { server_id: fx.server.id, registry_url: "ghcr.io" }, elsewhere.token);
      expect(res.status).toBe(403);
      expect(res.body.detail).toMatch(/allowed servers/);
      expect((await automation("/registry-auth/logout", { server_id: "00000000-0000-4000-8000-000000000000", registry_url: "ghcr.io" })).status).toBe(404);
    });
  });
});
