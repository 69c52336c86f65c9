import { randomBytes } from "node:crypto";
import { closeTestPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { TestStack } from "../helpers/stack";

/**
 * The key rotation procedure of docs/operations.md, checked on a real stack:
 * while a rollout is half done, a gateway and a dispatcher run with different
 * active keys. Operations survive that only if each knows the other's key,
 * which is why the guide adds the new key as a previous key everywhere first.
 */
describe("rotating RUNBRIDGE_ENCRYPTION_KEY (docs/operations.md)", () => {
  const OLD = randomBytes(32).toString("base64");
  const NEW = randomBytes(32).toString("base64");
  const stacks: TestStack[] = [];

  afterAll(async () => {
    await Promise.all(stacks.map((s) => s.stop()));
    await closeTestPrisma();
  });

  async function execWithSecretEnv(gateway: Record<string, string>, dispatcher: Record<string, string>) {
    const stack = await TestStack.start({ gateway, dispatcher });
    stacks.push(stack);
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id);
    const res = await stack
      .api()
      .post("/api/automation/v1/exec")
      .set("Authorization", `Bearer ${fx.token}`)
      .send({ server_id: fx.server.id, command: 'test "$ROTATION_SECRET" = "rotation-canary" && echo ok', env: { ROTATION_SECRET: "rotation-canary" } });
    return res.body as { status: string; stdout?: string; error?: string };
  }

  it("phase 2 half rolled out (gateway seals with the new key, dispatcher still on the old one that lists it): operations run", async () => {
    const body = await execWithSecretEnv(
      { RUNBRIDGE_ENCRYPTION_KEY: NEW, RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: OLD },
      { RUNBRIDGE_ENCRYPTION_KEY: OLD, RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: NEW },
    );
    expect(body).toMatchObject({ status: "completed", stdout: "ok\n" });
  });

  it("skipping phase 1 (the dispatcher does not know the new key yet) fails operations that carry secrets", async () => {
    const body = await execWithSecretEnv({ RUNBRIDGE_ENCRYPTION_KEY: NEW, RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: OLD }, { RUNBRIDGE_ENCRYPTION_KEY: OLD, RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: "" });
    expect(body.status).toBe("failed");
    expect(body.error).toMatch(/sealed/);
  });
});
