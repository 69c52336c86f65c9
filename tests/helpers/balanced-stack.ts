import { closeTestPrisma } from "./db";
import { type StackOptions, TestStack } from "./stack";
import { TcpBalancer } from "./tcp-balancer";

/**
 * A stack for one test file with a TcpBalancer in front of its dispatchers:
 * runners started with `RUNBRIDGE_DISPATCHER_URL: lb.url` can be cut off at
 * will. `opts` may be a function, for options known only once something else
 * is up (e.g. a private PostgreSQL's URL). Registers beforeAll/afterAll; the
 * returned object is filled in by the time the tests run.
 */
export function useStackBehindBalancer(opts: StackOptions | (() => Promise<StackOptions>) = {}): { stack: TestStack; lb: TcpBalancer } {
  const suite = {} as { stack: TestStack; lb: TcpBalancer };
  beforeAll(async () => {
    suite.stack = await TestStack.start(typeof opts === "function" ? await opts() : opts);
    suite.lb = new TcpBalancer(suite.stack.dispatcherPorts);
    await suite.lb.listen();
  });
  afterAll(async () => {
    await suite.stack?.stop().catch(() => undefined);
    await suite.lb?.close();
    await closeTestPrisma();
  });
  return suite;
}
