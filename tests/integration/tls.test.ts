import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { get } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import type { Proc } from "../helpers/processes";
import { TestStack } from "../helpers/stack";

/** A private CA and a server certificate for localhost/127.0.0.1 signed by it, made with openssl. */
function makeCertificates(dir: string): { ca: string; otherCa: string; cert: string; key: string } {
  const run = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  for (const name of ["ca", "other-ca"]) {
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", `/CN=runbridge test ${name}`, "-keyout", `${name}.key`, "-out", `${name}.pem`);
  }
  run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr");
  writeFileSync(path.join(dir, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.pem");
  return { ca: path.join(dir, "ca.pem"), otherCa: path.join(dir, "other-ca.pem"), cert: path.join(dir, "server.pem"), key: path.join(dir, "server.key") };
}

/**
 * Runners reach a dispatcher that serves TLS itself (DISPATCHER_TLS_CERT_FILE /
 * DISPATCHER_TLS_KEY_FILE) over wss://, trusting a private CA pinned with
 * RUNBRIDGE_CA_FILE, and refuse a dispatcher their CA did not sign.
 */
describe("TLS between runner and dispatcher", () => {
  let stack: TestStack;
  let dir: string;
  let certs: ReturnType<typeof makeCertificates>;
  let tlsPort: number;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "rb-tls-"));
    certs = makeCertificates(dir);
    stack = await TestStack.start();
    await stack.startDispatcher({ DISPATCHER_TLS_CERT_FILE: certs.cert, DISPATCHER_TLS_KEY_FILE: certs.key, DISPATCHER_ID: "d-tls" });
    tlsPort = stack.dispatcherPorts[1]!;
  }, 120_000);

  afterAll(async () => {
    await stack.stop();
    await closeTestPrisma();
    rmSync(dir, { recursive: true, force: true });
  });

  const runnerAt = async (url: string, env: Record<string, string>, waitConnected: boolean) => {
    const fx = await createFixture();
    const proc: Proc = await stack.startRunner(fx.runnerToken, fx.server.id, { dispatcher: 1, waitConnected, env: { RUNBRIDGE_DISPATCHER_URL: url, ...env } });
    return { fx, proc };
  };

  it("serves health over https with the certificate it was given", async () => {
    const body = await new Promise<string>((resolve, reject) => {
      get({ host: "127.0.0.1", port: tlsPort, path: "/healthz", ca: readFileSync(certs.ca), servername: "localhost" }, (res) => {
        let data = "";
        res.on("data", (d: Buffer) => (data += d.toString()));
        res.on("end", () => resolve(`${res.statusCode} ${data}`));
      }).on("error", reject);
    });
    expect(body).toBe('200 {"status":"ok"}');
  });

  it("connects over wss:// trusting the pinned CA, and runs a command", async () => {
    const { fx } = await runnerAt(`wss://localhost:${tlsPort}`, { RUNBRIDGE_CA_FILE: certs.ca }, true);
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: "echo over-tls" });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0, stdout: "over-tls\n" });
  });

  it("also accepts an https:// dispatcher URL", async () => {
    const { fx } = await runnerAt(`https://127.0.0.1:${tlsPort}`, { RUNBRIDGE_CA_FILE: certs.ca }, true);
    expect(await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))).toBe(1);
  });

  it.each([
    ["no CA pinned (the system store does not know the private CA)", {}],
    ["another CA pinned", { RUNBRIDGE_CA_FILE: "OTHER" }],
  ])("refuses a dispatcher whose certificate it cannot verify: %s", async (_label, env: Record<string, string>) => {
    const resolved = Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === "OTHER" ? certs.otherCa : v]));
    const { fx, proc } = await runnerAt(`wss://localhost:${tlsPort}`, resolved, false);
    await proc.waitForOutput(/cannot connect to dispatcher/, 15_000);
    // Several attempts later it is still not connected.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await stack.redis.exists(stack.keys.runnerPresence(fx.server.id))).toBe(0);
    expect(proc.output).toMatch(/certificate/i);
    await proc.stop("SIGKILL");
  });
});
