import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { testPrisma } from "../helpers/db";
import { createAutomationKey } from "../helpers/factories";
import { waitFor } from "../helpers/processes";
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
  let deployKey: { key: { id: string }; token: string };

  beforeAll(async () => {
    ({ stack, fx } = suite);
    deployKey = await createAutomationKey(fx.tenant.id, { allowedOperations: ["deploy"] });
  });

  const mgmt = (method: "get" | "post" | "patch", p: string) => stack.api()[method](`/api/v1${p}`).set("Authorization", `Bearer ${fx.apiKey}`);
  const deploy = (body: Record<string, unknown>) => stack.api().post("/api/automation/v1/deploy").set("Authorization", `Bearer ${deployKey.token}`).send(body);
  const createApp = async (fields: Record<string, unknown>) => {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-envguard-"));
    const res = await mgmt("post", "/applications").send({ name: "guarded", server_id: fx.server.id, working_directory: dir, deploy_command: "true", ...fields });
    expect(res.status).toBe(201);
    return { app: res.body as { id: string }, dir };
  };
  const output = async (operationId: string) => {
    const row = await waitFor(
      async () => {
        const op = await testPrisma().operation.findUniqueOrThrow({ where: { id: operationId } });
        return op.status === "running" ? null : op;
      },
      20_000,
      `operation ${operationId} to end`,
    );
    return { status: row.status, exitCode: row.exitCode, stdout: row.stdout };
  };
  const keyOperations = () => testPrisma().operation.count({ where: { automationKeyId: deployKey.key.id } });

  it("refuses with 422 the names that change how the deploy command's programs start, naming the variable, and starts nothing", async () => {
    // The review's example: git runs core.fsmonitor (a command) on `git status` when git's config says so.
    const { app, dir } = await createApp({ deploy_command: 'git status --short >/dev/null && echo "deployed $FEATURE_FLAG $NODE_ENV $LDAP_URL $GITHUB_SHA $ENVIRONMENT"' });
    execFileSync("git", ["init", "-q", dir]);
    const canary = path.join(dir, "pwned");
    const before = await keyOperations();
    const attempts: [Record<string, string>, RegExp][] = [
      [{ GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "core.fsmonitor", GIT_CONFIG_VALUE_0: `touch ${canary}; false` }, /key GIT_CONFIG_COUNT is refused: git reads its configuration/],
      [{ FEATURE_FLAG: "on", GIT_SSH_COMMAND: `touch ${canary}` }, /key GIT_SSH_COMMAND is refused: git reads/],
      [{ LD_PRELOAD: "/tmp/evil.so" }, /key LD_PRELOAD is refused: the dynamic loader/],
      [{ BASH_ENV: "/tmp/evil.sh" }, /key BASH_ENV is refused: shells read startup files/],
      [{ PS4: `$(touch ${canary})` }, /key PS4 is refused: shells read/],
      [{ PATH: "/tmp" }, /key PATH is refused: it chooses which program a command name runs/],
      [{ HOME: dir }, /key HOME is refused: it chooses which program a command name runs, or where git, ssh/],
      [{ NODE_OPTIONS: "--require /tmp/evil.js" }, /key NODE_OPTIONS is refused: an interpreter or runtime loads/],
      [{ PYTHONPATH: "/tmp" }, /key PYTHONPATH is refused: an interpreter/],
      [{ Npm_Config_Script_Shell: "/tmp/evil" }, /key Npm_Config_Script_Shell is refused: npm and pnpm read any of their settings/],
      [{ DOCKER_HOST: "ssh://evil.example" }, /key DOCKER_HOST is refused: it chooses the Docker engine/],
      [{ HTTPS_PROXY: "http://evil.example:3128" }, /key HTTPS_PROXY is refused: it sends the deploy's downloads through a host/],
      // make pastes RM into a recipe `$(RM) x` as shell text; TAR_OPTIONS and RSYNC_RSH start programs.
      [{ RM: `touch ${canary};` }, /key RM is refused: GNU make takes it from the environment and pastes it into the shell commands/],
      [{ TAR_OPTIONS: `--to-command=touch ${canary}` }, /key TAR_OPTIONS is refused: GNU tar takes command-line options from it/],
      [{ RSYNC_RSH: `sh -c "touch ${canary}"` }, /key RSYNC_RSH is refused: GNU tar .*or rsync the remote shell/],
      [{ CC_x86_64_unknown_linux_gnu: `touch ${canary};` }, /key CC_x86_64_unknown_linux_gnu is refused: it names the compiler/],
      // The C compiler's dependency file, D-Bus addresses, podman's service, Ansible's ssh arguments, files written where the value says.
      [{ DEPENDENCIES_OUTPUT: `${canary} x` }, /key DEPENDENCIES_OUTPUT is refused: the C compiler \(gcc, cpp, clang\)/],
      [{ DBUS_SYSTEM_BUS_ADDRESS: `unixexec:path=/bin/touch,argv1=${canary}` }, /key DBUS_SYSTEM_BUS_ADDRESS is refused: it chooses the D-Bus bus/],
      [{ CONTAINER_HOST: "ssh://evil.example/run/podman.sock" }, /key CONTAINER_HOST is refused: it chooses the Docker engine, Podman service/],
      [{ HELM_KUBEAPISERVER: "https://evil.example" }, /key HELM_KUBEAPISERVER is refused: it chooses the Docker engine, Podman service, BuildKit builder or Kubernetes cluster/],
      [{ ANSIBLE_SSH_ARGS: `-o ProxyCommand="touch ${canary}"` }, /key ANSIBLE_SSH_ARGS is refused: Ansible, Terraform or a cloud CLI/],
      [{ SSLKEYLOGFILE: canary }, /key SSLKEYLOGFILE is refused: the program writes a file/],
    ];
    for (const [env_overrides, detail] of attempts) {
      const res = await deploy({ application_id: app.id, env_overrides });
      expect([Object.keys(env_overrides), res.status, res.body.detail]).toEqual([Object.keys(env_overrides), 422, expect.stringMatching(detail)]);
      expect(res.body.detail).toMatch(/A deploy key may only start the application's deploy command: a key allowed to exec can pass \S+ to a command with exec, or the application can allow it by listing \S+ in its allowed_env_overrides$/);
    }
    // Nothing was recorded or started.
    expect(await keyOperations()).toBe(before);
    expect(await testPrisma().deployment.count({ where: { applicationId: app.id } })).toBe(0);

    // The deploy itself works, with names that only start like refused ones, and ran nothing of the caller's.
    const ok = await deploy({ application_id: app.id, env_overrides: { FEATURE_FLAG: "on", NODE_ENV: "prd", LDAP_URL: "l", GITHUB_SHA: "abc", ENVIRONMENT: "stg" } });
    expect(ok.status).toBe(202);
    expect(await output(ok.body.operation_id)).toEqual({ status: "completed", exitCode: 0, stdout: "deployed on prd l abc stg\n" });
    expect(existsSync(canary)).toBe(false);

    // exec is not restricted: a key allowed to exec runs commands of its choosing by design.
    const exec = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: 'echo "$GIT_CONFIG_COUNT $PS4"', env: { GIT_CONFIG_COUNT: "0", PS4: "+ " } });
    expect(exec.status).toBe(200);
    expect(exec.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "0 + \n" });
  });

  // The review's two vectors, verified on a real stack, here on a real runner: a deploy command that compiles C
  // (gcc writes its dependency list where DEPENDENCIES_OUTPUT says, appending "<target>: x.c") and asks the user's
  // systemd for a unit (sd-bus starts the program of a unixexec: D-Bus address). Needs cc and systemctl.
  const missingTools = ["cc", "systemctl"].filter((tool) => spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0);
  const itWithTools = missingTools.length === 0 ? it : it.skip;
  itWithTools(`refuses the compiler's dependency file and a D-Bus unixexec: address with 422, and nothing runs${missingTools.length ? ` (skipped: no ${missingTools.join(", ")})` : ""}`, async () => {
    const deployCommand = 'cc -c x.c -o x.o && { systemctl --user is-active rb-envguard.service >/dev/null 2>&1; echo "deployed $RELEASE_TAG"; }';
    const armed = async (allowed: string[] | null) => {
      const { app, dir } = await createApp({ deploy_command: deployCommand, allowed_env_overrides: allowed });
      writeFileSync(path.join(dir, "x.c"), "int x;\n");
      const keys = path.join(dir, "authorized_keys");
      writeFileSync(keys, "ssh-ed25519 AAAAowner owner\n");
      const ran = path.join(dir, "dbus-ran");
      const vectors = {
        DEPENDENCIES_OUTPUT: `${keys} ssh-ed25519 AAAAattacker attacker`,
        DBUS_SESSION_BUS_ADDRESS: `unixexec:path=/bin/sh,argv1=-c,argv2=touch%20${ran}`,
      };
      return { app, keys, ran, vectors };
    };

    // The default rules: each refused with a 422 naming it; nothing recorded, nothing run.
    const open = await armed(null);
    const before = await keyOperations();
    for (const [name, value] of Object.entries(open.vectors)) {
      const res = await deploy({ application_id: open.app.id, env_overrides: { RELEASE_TAG: "v1", [name]: value } });
      expect([name, res.status, res.body.detail]).toEqual([name, 422, expect.stringMatching(new RegExp(`^"env_overrides" key ${name} is refused: `))]);
    }
    expect(await keyOperations()).toBe(before);
    const ok = await deploy({ application_id: open.app.id, env_overrides: { RELEASE_TAG: "v1" } });
    expect(ok.status).toBe(202);
    expect(await output(ok.body.operation_id)).toEqual({ status: "completed", exitCode: 0, stdout: "deployed v1\n" });
    expect([readFileSync(open.keys, "utf8"), existsSync(open.ran)]).toEqual(["ssh-ed25519 AAAAowner owner\n", false]);

    // Why they are refused: an application that lists both names by hand lets them through, and the same deploy
    // command then appends the caller's line to authorized_keys and runs the caller's program.
    const listed = await armed(["RELEASE_TAG", "DEPENDENCIES_OUTPUT", "DBUS_SESSION_BUS_ADDRESS"]);
    const res = await deploy({ application_id: listed.app.id, env_overrides: { RELEASE_TAG: "v2", ...listed.vectors } });
    expect(res.status).toBe(202);
    expect(await output(res.body.operation_id)).toEqual({ status: "completed", exitCode: 0, stdout: "deployed v2\n" });
    expect([readFileSync(listed.keys, "utf8"), existsSync(listed.ran)]).toEqual(["ssh-ed25519 AAAAowner owner\nssh-ed25519 AAAAattacker attacker: x.c\n", true]);
  });

  describe("with the application's allowed_env_overrides", () => {
    it("accepts only the names it lists or its patterns match; a refused name only by its exact name; never RUNBRIDGE_*", async () => {
      const { app } = await createApp({
        deploy_command: 'echo "$LOG_LEVEL $FEATURE_SEARCH $GREETING $(git config --get rb.flag)"',
        allowed_env_overrides: ["LOG_LEVEL", "FEATURE_*", "G*", "GIT_CONFIG_COUNT", "GIT_CONFIG_KEY_0", "GIT_CONFIG_VALUE_0"],
      });
      const before = await keyOperations();
      for (const [env_overrides, detail] of [
        [{ LOG_LEVEL: "dbg", NODE_ENV: "prd" }, /^"env_overrides" key NODE_ENV is not in the application's allowed_env_overrides$/],
        [{ log_level: "dbg" }, /key log_level is not in the application's allowed_env_overrides/],
        [
          { GIT_SSH_COMMAND: "ssh -o x" },
          /^"env_overrides" key GIT_SSH_COMMAND matches G\* in the application's allowed_env_overrides but is refused: git reads .*Only the exact name GIT_SSH_COMMAND in allowed_env_overrides allows it$/,
        ],
        [{ RUNBRIDGE_COMMIT_REF: "x" }, /key RUNBRIDGE_COMMIT_REF is reserved/],
      ] as const) {
        const res = await deploy({ application_id: app.id, env_overrides });
        expect([env_overrides, res.status, res.body.detail]).toEqual([env_overrides, 422, expect.stringMatching(detail)]);
      }
      expect(await keyOperations()).toBe(before);

      // The operator listed git's config variables by name: their explicit choice, so they reach the command.
      const ok = await deploy({
        application_id: app.id,
        env_overrides: { LOG_LEVEL: "dbg", FEATURE_SEARCH: "on", GREETING: "hi", GIT_CONFIG_COUNT: "1", GIT_CONFIG_KEY_0: "rb.flag", GIT_CONFIG_VALUE_0: "yes" },
      });
      expect(ok.status).toBe(202);
      expect(await output(ok.body.operation_id)).toEqual({ status: "completed", exitCode: 0, stdout: "dbg on hi yes\n" });
    });

    it("takes no overrides when the list is empty, and the default rules again once it is null", async () => {
      const { app } = await createApp({ deploy_command: 'echo "[$NODE_ENV]"', allowed_env_overrides: [] });
      const refused = await deploy({ application_id: app.id, env_overrides: { NODE_ENV: "prd" } });
      expect([refused.status, refused.body.detail]).toEqual([422, '"env_overrides" key NODE_ENV is not in the application\'s allowed_env_overrides (the list is empty: this application takes no overrides)']);
      const bare = await deploy({ application_id: app.id, env_overrides: {} });
      expect(bare.status).toBe(202);
      expect((await output(bare.body.operation_id)).stdout).toBe("[]\n");

      expect((await mgmt("patch", `/applications/${app.id}`).send({ allowed_env_overrides: null })).status).toBe(200);
      const open = await deploy({ application_id: app.id, env_overrides: { NODE_ENV: "prd" } });
      expect(open.status).toBe(202);
      expect((await output(open.body.operation_id)).stdout).toBe("[prd]\n");
      expect((await deploy({ application_id: app.id, env_overrides: { PATH: "/tmp" } })).status).toBe(422);
    });
  });

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
