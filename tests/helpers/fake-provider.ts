import { createServer, type IncomingMessage, type Server } from "node:http";
import { once } from "node:events";
import { createLogger } from "@runbridge/common";
import type { DispatcherContext } from "../../apps/dispatcher/src/context";
import type { TestStack } from "./stack";
import { useStack } from "./suite";

export interface ProviderRequest {
  method: string;
  path: string;
  authorization: string;
  body: string;
}

/**
 * A stand-in for a cloud provider's API (Hetzner Cloud, DigitalOcean) on
 * 127.0.0.1: records every request and answers with the status set by
 * `respondWith` (201 with an action by default), after `delayAnswers` ms
 * (none by default; a request is recorded when it arrives).
 */
export class FakeProvider {
  readonly requests: ProviderRequest[] = [];
  private status: number | "drop" = 201;
  private body: string | undefined;
  private delayMs = 0;
  private held: Promise<void> | null = null;
  private server: Server | null = null;
  url = "";

  static async start(): Promise<FakeProvider> {
    const fake = new FakeProvider();
    fake.server = createServer(
      (req, res) =>
        void fake.handle(req).then((reply) => {
          if (reply === "drop") req.socket.destroy();
          else res.writeHead(reply[0], { "content-type": "application/json" }).end(reply[1]);
        }),
    );
    fake.server.listen(0, "127.0.0.1");
    await once(fake.server, "listening");
    const addr = fake.server.address();
    if (!addr || typeof addr !== "object") throw new Error("fake provider did not bind");
    fake.url = `http://127.0.0.1:${addr.port}`;
    return fake;
  }

  /** An HTTP status to answer with, or "drop" to cut the connection without answering; `body` replaces the usual one. */
  respondWith(status: number | "drop", body?: string): void {
    this.status = status;
    this.body = body;
  }

  /** Holds every answer (or drop) this long after the request arrived; 0 answers at once. */
  delayAnswers(ms: number): void {
    this.delayMs = ms;
  }

  /** Holds every answer (or drop) until the returned function is called (after any delay). */
  hold(): () => void {
    let release = () => undefined as void;
    this.held = new Promise<void>((resolve) => (release = resolve));
    return () => {
      this.held = null;
      release();
    };
  }

  /**
   * Stops listening (and cuts open connections) until `listen()`: calls to it are then refused
   * before any request is sent, like a provider API that cannot be reached.
   */
  async refuse(): Promise<void> {
    const server = this.server;
    if (!server?.listening) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Listens again, on the same address, after `refuse()`. */
  async listen(): Promise<void> {
    const server = this.server;
    if (!server || server.listening) return;
    server.listen(Number(new URL(this.url).port), "127.0.0.1");
    await once(server, "listening");
  }

  private async handle(req: IncomingMessage): Promise<[number, string] | "drop"> {
    let body = "";
    for await (const chunk of req) body += String(chunk);
    this.requests.push({ method: req.method ?? "", path: req.url ?? "", authorization: req.headers.authorization ?? "", body });
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    if (this.held) await this.held;
    if (this.status === "drop") return "drop";
    if (this.body !== undefined) return [this.status, this.body];
    if (this.status >= 400) return [this.status, JSON.stringify({ error: { code: "fake_failure", message: "the fake provider was told to fail" } })];
    return [this.status, JSON.stringify({ action: { id: 4242, command: "reboot_server", status: "running" } })];
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server?.listening ? this.server.close(() => resolve()) : resolve()));
  }
}

/**
 * What rebootViaProvider uses of a dispatcher's context, built on the stack's gateway (its store, sealer and
 * Redis) with `provider` as both cloud APIs: for calling it in the test process, as two deliveries at once would.
 */
export function providerCallContext(stack: TestStack, provider: FakeProvider): DispatcherContext {
  return {
    prisma: stack.gateway.prisma,
    operations: stack.gateway.operations,
    sealer: stack.gateway.sealer,
    redis: stack.redis,
    keys: stack.keys,
    logger: createLogger("test", "error"),
    clock: { now: () => Date.now() },
    config: { HCLOUD_API_URL: `${provider.url}/hcloud/v1`, DIGITALOCEAN_API_URL: `${provider.url}/do/v2`, PROVIDER_API_TIMEOUT_MS: 5000 },
  } as unknown as DispatcherContext;
}

/**
 * A suite (useStack) whose dispatchers reboot Hetzner servers through a FakeProvider, started before the stack and
 * stopped after it, with a short job lock: a delivery stalled past it has its job taken over within a few seconds.
 */
export function useStackWithProvider(): { stack: TestStack; provider: FakeProvider } {
  const suite = useStack(async () => {
    suite.provider = await FakeProvider.start();
    return { dispatcher: { HCLOUD_API_URL: `${suite.provider.url}/hcloud/v1`, JOB_LOCK_MS: "2000" } };
  }) as { stack: TestStack; provider: FakeProvider };
  afterAll(() => suite.provider?.stop());
  return suite;
}
