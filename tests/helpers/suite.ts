import { closeTestPrisma } from "./db";
import { createFixture } from "./factories";
import { type RunnerOptions, TestStack, type StackOptions } from "./stack";

export type Fixture = Awaited<ReturnType<typeof createFixture>>;

/**
 * The most common suite: its own stack (fresh Redis prefix, a dispatcher, an
 * in-process gateway), one tenant with a server whose runner is connected,
 * and an unscoped automation key. `runner` is passed to the runner's start
 * (e.g. its env). Registers the suite's beforeAll/afterAll; the returned
 * object is filled in by the time the tests run.
 */
export function useStackWithRunner(opts?: StackOptions, runner?: RunnerOptions): { stack: TestStack; fx: Fixture } {
  const suite = {} as { stack: TestStack; fx: Fixture };
  beforeAll(async () => {
    suite.stack = await TestStack.start(opts);
    suite.fx = await createFixture();
    await suite.stack.startRunner(suite.fx.runnerToken, suite.fx.server.id, runner);
  });
  afterAll(async () => {
    await suite.stack?.stop();
    await closeTestPrisma();
  });
  return suite;
}
