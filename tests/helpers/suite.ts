import { closeTestPrisma } from "./db";
import { createFixture } from "./factories";
import type { Proc } from "./processes";
import { type RunnerOptions, TestStack, type StackOptions } from "./stack";
import { ThrottleProxy } from "./throttle-proxy";

export type Fixture = Awaited<ReturnType<typeof createFixture>>;
/** A stack's options, or a function that makes them once something else is up. */
export type SuiteStackOptions = StackOptions | (() => Promise<StackOptions>);

/**
 * A suite with its own stack (fresh Redis prefix, a dispatcher, an in-process
 * gateway), started before its tests and stopped after them. Registers the
 * suite's beforeAll/afterAll; the returned object is filled in by the time the
 * tests run. `opts` may be a function, for options known only once something
 * else is up (e.g. a fake provider's URL); it is called in the same beforeAll,
 * just before the stack starts.
 */
export function useStack(opts?: SuiteStackOptions): { stack: TestStack } {
  const suite = {} as { stack: TestStack };
  beforeAll(async () => {
    suite.stack = await TestStack.start(typeof opts === "function" ? await opts() : opts);
  });
  afterAll(async () => {
    await suite.stack?.stop();
    await closeTestPrisma();
  });
  return suite;
}

/**
 * The most common suite: its own stack (useStack), one tenant with a server
 * whose runner is connected, and an unscoped automation key. `runner` is
 * passed to the runner's start (e.g. its env).
 */
export function useStackWithRunner(opts?: SuiteStackOptions, runner?: RunnerOptions): { stack: TestStack; fx: Fixture } {
  const suite = useStack(opts) as { stack: TestStack; fx: Fixture };
  beforeAll(async () => {
    suite.fx = await createFixture();
    await suite.stack.startRunner(suite.fx.runnerToken, suite.fx.server.id, runner);
  });
  return suite;
}

/**
 * A suite whose one runner reaches its dispatcher over a slow uplink: a ThrottleProxy of
 * `uplinkBytesPerSecond` between them (what the runner sends is throttled, answers are not).
 */
export function useStackWithSlowUplink(
  uplinkBytesPerSecond: number,
  opts?: SuiteStackOptions,
): { stack: TestStack; fx: Fixture; proxy: ThrottleProxy; runner: Proc } {
  const suite = useStack(opts) as { stack: TestStack; fx: Fixture; proxy: ThrottleProxy; runner: Proc };
  beforeAll(async () => {
    suite.fx = await createFixture();
    suite.proxy = new ThrottleProxy(suite.stack.dispatcherPorts[0] as number, uplinkBytesPerSecond);
    await suite.proxy.listen();
    suite.runner = await suite.stack.startRunner(suite.fx.runnerToken, suite.fx.server.id, { env: { RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${suite.proxy.port}` } });
  });
  afterAll(() => suite.proxy?.close());
  return suite;
}
