import { holdRowLock, testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/**
 * A management delete that loses a race with another delete of the same row
 * (its lookup saw the row, its own delete found it gone) answers 404 with a
 * detail, not 500. The race is made deterministic by holding the row's lock
 * in a transaction of the test's own until the request waits on it.
 */
describe("deletes racing each other", () => {
  const suite = useStack({ dispatchers: 0 });
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  it("the loser of two deletes of one application gets 404", async () => {
    const fx = await createFixture();
    const app = await testPrisma().application.create({ data: { tenantId: fx.tenant.id, serverId: fx.server.id, name: "web", workingDirectory: "/srv", deployCommand: "true" } });
    const lock = holdRowLock("applications", app.id);
    const pending = stack.api().delete(`/api/v1/applications/${app.id}`).set("Authorization", `Bearer ${fx.apiKey}`).then((r) => r);
    await lock.blocked();
    // The other delete commits first.
    await lock.finish((tx) => tx.application.delete({ where: { id: app.id } }));
    const res = await pending;
    expect(res.status).toBe(404);
    expect(res.body.detail).toMatch(/deleted by another request/);
  });
});
