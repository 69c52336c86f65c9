import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT, listenOnLoopback } from "../helpers/processes";

/**
 * Every process checks its whole environment at boot and names every bad
 * variable at once, before it opens a single connection (the URLs below point
 * nowhere: reaching them would hang or fail differently).
 */
describe("configuration at boot", () => {
  const boot = (app: string, env: Record<string, string>) =>
    spawnSync(process.execPath, [path.join(ROOT, `apps/${app}/dist/main.js`)], { env: { PATH: process.env.PATH, ...env }, encoding: "utf8", timeout: 15_000 });

  it.each([
    ["gateway", { DATABASE_URL: "mysql://nope", REDIS_URL: "http://nope", PORT: "eighty", RUNBRIDGE_ENCRYPTION_KEY: "short", LOG_LEVEL: "loud" }, ["DATABASE_URL", "REDIS_URL", "PORT", "RUNBRIDGE_ENCRYPTION_KEY", "LOG_LEVEL"]],
    ["dispatcher", { DISPATCHER_PORT: "-1", WORKER_CONCURRENCY: "0", OPERATION_RETENTION_DAYS: "-1", AUDIT_RETENTION_DAYS: "forever" }, ["DATABASE_URL", "RUNBRIDGE_ENCRYPTION_KEY", "DISPATCHER_PORT", "WORKER_CONCURRENCY", "OPERATION_RETENTION_DAYS", "AUDIT_RETENTION_DAYS"]],
    ["runner", { RUNBRIDGE_DISPATCHER_URL: "ftp://x", RUNBRIDGE_RUNNER_TOKEN: "rca_wrongkind" }, ["RUNBRIDGE_DISPATCHER_URL", "RUNBRIDGE_RUNNER_TOKEN"]],
  ] as const)("%s lists every bad variable and exits 78", (app, env, names) => {
    const r = boot(app, env);
    expect(r.status).toBe(78);
    expect(r.stderr).toContain(`${app}: invalid configuration`);
    for (const name of names) expect(r.stderr).toMatch(new RegExp(`- .*${name}`));
    // The runner's token is a secret even when it is wrong: never echoed.
    if (app === "runner") expect(r.stderr).not.toContain("rca_wrongkind");
  });
});

/**
 * Settings that used to be checked only where they are used (Express's proxy
 * setting, the sealer's key list, TLS and CA files), after the database and
 * Redis were reached: a bad one crashed with exit 1 and a stack trace, which
 * systemd and compose restart in a loop. They are part of the boot check now.
 * The URLs point at a listener of ours that must see no connection at all.
 */
describe("configuration checked where it is used is reported at boot too", () => {
  let dir: string;
  let listener: Server;
  let port: number;
  let connections = 0;
  const KEY = randomBytes(32).toString("base64");
  // A secret even when it is the wrong size: must never be echoed.
  const SHORT_KEY = randomBytes(16).toString("base64");

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-cfg-"));
    listener = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    port = await listenOnLoopback(listener);
  });

  afterAll(async () => {
    rmSync(dir, { recursive: true, force: true });
    await new Promise((resolve) => listener.close(resolve));
  });

  const boot = async (app: string, env: Record<string, string>) => {
    const child = spawn(process.execPath, [path.join(ROOT, `apps/${app}/dist/main.js`)], { env: { PATH: process.env.PATH, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    const [code] = (await once(child, "exit")) as [number | null];
    clearTimeout(killer);
    return { code, output };
  };
  const servers = () => ({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${port}/db`, REDIS_URL: `redis://127.0.0.1:${port}`, RUNBRIDGE_ENCRYPTION_KEY: KEY });

  const expectRefused = (r: { code: number | null; output: string }, app: string, problems: RegExp[]) => {
    expect(r.output).toContain(`${app}: invalid configuration`);
    for (const problem of problems) expect(r.output).toMatch(problem);
    expect(r.output).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.output).not.toContain(SHORT_KEY);
    expect(r.code).toBe(78);
    expect(connections).toBe(0);
  };

  it("gateway: a TRUST_PROXY Express cannot compile and a malformed retired key", async () => {
    const r = await boot("gateway", { ...servers(), TRUST_PROXY: "loopback, garbage", RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: `${KEY},${SHORT_KEY}` });
    expectRefused(r, "gateway", [/- TRUST_PROXY .*garbage/, /- RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS\b.*entry 2 of 2/]);
  });

  it.each(["1", "loopback, 10.0.0.0/8, ::1", "false", ""])("gateway: TRUST_PROXY=%j passes the boot check", async (trustProxy) => {
    const r = await boot("gateway", { ...servers(), TRUST_PROXY: trustProxy, PORT: "eighty" });
    expect(r.code).toBe(78);
    expect(r.output).toMatch(/- PORT/);
    expect(r.output).not.toContain("TRUST_PROXY");
  });

  it("dispatcher: a certificate without its key, and a retired key that is not base64", async () => {
    const cert = path.join(dir, "cert.pem");
    writeFileSync(cert, "not checked here\n");
    const r = await boot("dispatcher", { ...servers(), DISPATCHER_TLS_CERT_FILE: cert, RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: "not base64!" });
    expectRefused(r, "dispatcher", [/- DISPATCHER_TLS_CERT_FILE .*DISPATCHER_TLS_KEY_FILE/, /- RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS/]);
  });

  it("dispatcher: a key without its certificate", async () => {
    const key = path.join(dir, "key.pem");
    writeFileSync(key, "not checked here\n");
    const r = await boot("dispatcher", { ...servers(), DISPATCHER_TLS_KEY_FILE: key });
    expectRefused(r, "dispatcher", [/- DISPATCHER_TLS_KEY_FILE .*DISPATCHER_TLS_CERT_FILE/]);
  });

  it("dispatcher: TLS files that do not exist or are not files", async () => {
    const r = await boot("dispatcher", { ...servers(), DISPATCHER_TLS_CERT_FILE: path.join(dir, "missing.pem"), DISPATCHER_TLS_KEY_FILE: dir });
    expectRefused(r, "dispatcher", [/- DISPATCHER_TLS_CERT_FILE .*missing\.pem.*does not exist/, /- DISPATCHER_TLS_KEY_FILE .*not a file/]);
  });

  /** A self-signed certificate and its key, made with openssl. */
  const pair = (name: string) => {
    const [cert, key] = [path.join(dir, `${name}.pem`), path.join(dir, `${name}.key`)];
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", `/CN=${name}`, "-keyout", key, "-out", cert], { stdio: "pipe" });
    return { cert, key };
  };

  it("dispatcher: the certificate and key files swapped", async () => {
    const { cert, key } = pair("swapped");
    const r = await boot("dispatcher", { ...servers(), DISPATCHER_TLS_CERT_FILE: key, DISPATCHER_TLS_KEY_FILE: cert });
    expectRefused(r, "dispatcher", [/- DISPATCHER_TLS_CERT_FILE .*does not hold a PEM certificate/, /- DISPATCHER_TLS_KEY_FILE .*does not hold an unencrypted PEM private key/]);
    // The key file's content is never quoted.
    expect(r.output).not.toContain(readFileSync(key, "utf8").split("\n")[1]);
  });

  it("dispatcher: a key that is not the certificate's", async () => {
    const [a, b] = [pair("pair-a"), pair("pair-b")];
    const r = await boot("dispatcher", { ...servers(), DISPATCHER_TLS_CERT_FILE: a.cert, DISPATCHER_TLS_KEY_FILE: b.key });
    expectRefused(r, "dispatcher", [/- DISPATCHER_TLS_KEY_FILE is not the private key of that certificate in DISPATCHER_TLS_CERT_FILE/]);
  });

  it("dispatcher: a matching pair passes the boot check", async () => {
    const { cert, key } = pair("good");
    const r = await boot("dispatcher", { ...servers(), DISPATCHER_TLS_CERT_FILE: cert, DISPATCHER_TLS_KEY_FILE: key, DISPATCHER_PORT: "-1" });
    expectRefused(r, "dispatcher", [/- DISPATCHER_PORT/]);
    expect(r.output).not.toContain("DISPATCHER_TLS");
  });

  it("runner: a CA file that holds no certificate", async () => {
    const ca = path.join(dir, "ca-garbage.pem");
    writeFileSync(ca, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    const r = await boot("runner", {
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${port}`,
      RUNBRIDGE_RUNNER_TOKEN: `rbr_${"a".repeat(42)}`,
      RUNBRIDGE_STATE_DIR: path.join(dir, "state"),
      RUNBRIDGE_CA_FILE: ca,
    });
    expectRefused(r, "runner", [/- RUNBRIDGE_CA_FILE .*ca-garbage\.pem.*does not hold a PEM certificate/]);
  });

  it.each<Record<string, string>>([{}, { RUNBRIDGE_LEDGER_RETENTION_DAYS: "0" }])("runner: a CA file that does not exist (with %j)", async (others) => {
    const r = await boot("runner", {
      ...others,
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${port}`,
      RUNBRIDGE_RUNNER_TOKEN: `rbr_${"a".repeat(42)}`,
      RUNBRIDGE_STATE_DIR: path.join(dir, "state"),
      RUNBRIDGE_CA_FILE: path.join(dir, "ca-missing.pem"),
    });
    expectRefused(r, "runner", [/- RUNBRIDGE_CA_FILE .*ca-missing\.pem.*does not exist/, ...Object.keys(others).map((name) => new RegExp(`- ${name}`))]);
  });
});
