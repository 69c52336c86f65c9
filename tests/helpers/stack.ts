import { mkdtempSync } from "node:fs";
import type { Server as HttpServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { once } from "node:events";
import request from "supertest";
import { redisKeys } from "@runbridge/contracts";
import { createRedis, parseConfig } from "@runbridge/common";
import { buildGatewayContext } from "../../apps/gateway/src/bootstrap";
import { gatewayEnvSchema, type GatewayConfig } from "../../apps/gateway/src/config";
import { createGatewayServer } from "../../apps/gateway/src/server";
import { TEST_ENCRYPTION_KEY, freshPrefix, testDatabaseUrl, testRedisUrl } from "./env";
import { type Proc, RUNNER_SCRIPT, startNode, startOnFreePort, waitFor } from "./processes";

type Redis = ReturnType<typeof createRedis>;

export interface StackOptions {
  /** Extra gateway configuration (e.g. EXEC_MAX_WAIT_SECONDS). */
  gateway?: Record<string, string>;
  /** Extra dispatcher configuration. */
  dispatcher?: Record<string, string>;
  dispatchers?: number;
  redisUrl?: string;
  databaseUrl?: string;
  /** The Node binary of its dispatchers, runners and gateway processes (default: this one); the in-process gateway runs on this one. */
  node?: string;
}

export interface RunnerOptions {
  env?: Record<string, string | undefined>;
  stateDir?: string;
  /** Which dispatcher to connect to. */
  dispatcher?: number;
  /** Wait until the runner shows as connected (default true). */
  waitConnected?: boolean;
}

/**
 * A whole system for one test file: real dispatcher processes, the gateway
 * app in-process on a real port, real runner processes, a fresh Redis prefix.
 */
export class TestStack {
  readonly keys;
  readonly dispatchers: Proc[] = [];
  readonly dispatcherPorts: number[] = [];
  readonly runners: Proc[] = [];
  /** Gateways started as processes of their own (the usual one runs in-process). */
  readonly gatewayProcs: Proc[] = [];
  gateway!: Awaited<ReturnType<typeof buildGatewayContext>>;
  url = "";
  private http: HttpServer | null = null;
  readonly redis: Redis;

  private constructor(
    readonly prefix: string,
    readonly opts: StackOptions,
  ) {
    this.keys = redisKeys(prefix);
    this.redis = createRedis(this.redisUrl);
  }

  get redisUrl(): string {
    return this.opts.redisUrl ?? testRedisUrl();
  }

  get databaseUrl(): string {
    return this.opts.databaseUrl ?? testDatabaseUrl();
  }

  static async start(opts: StackOptions = {}): Promise<TestStack> {
    const stack = new TestStack(freshPrefix(), opts);
    try {
      for (let i = 0; i < (opts.dispatchers ?? 1); i++) await stack.startDispatcher();
      await stack.startGateway();
      return stack;
    } catch (err) {
      // The caller never gets this stack to stop: what it started (its Redis connection, a dispatcher
      // already up) would otherwise outlive the test file and keep a jest worker from exiting.
      await stack.shutDown().catch(() => undefined);
      stack.redis.disconnect();
      throw err;
    }
  }

  commonEnv(): Record<string, string> {
    return {
      DATABASE_URL: this.databaseUrl,
      REDIS_URL: this.redisUrl,
      REDIS_PREFIX: this.prefix,
      RUNBRIDGE_ENCRYPTION_KEY: TEST_ENCRYPTION_KEY,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "info",
    };
  }

  async startDispatcher(extra: Record<string, string> = {}): Promise<Proc> {
    const { proc, port } = await startOnFreePort(
      (p) =>
        startNode("apps/dispatcher/dist/main.js", {
          ...this.commonEnv(),
          DISPATCHER_PORT: String(p),
          DISPATCHER_HOST: "127.0.0.1",
          DISPATCHER_ID: `d${this.dispatchers.length}`,
          SWEEP_INTERVAL_MS: "500",
          ...this.opts.dispatcher,
          ...extra,
        }, [], this.opts.node),
      /dispatcher ready/,
    );
    this.dispatchers.push(proc);
    this.dispatcherPorts.push(port);
    return proc;
  }

  async startGateway(): Promise<void> {
    const config = parseConfig<GatewayConfig>("gateway", gatewayEnvSchema, { ...this.commonEnv(), LOG_LEVEL: "warn", ...this.opts.gateway });
    this.gateway = await buildGatewayContext(config);
    this.http = createGatewayServer(this.gateway, config).listen(0, "127.0.0.1");
    await once(this.http, "listening");
    const addr = this.http.address();
    if (!addr || typeof addr !== "object") throw new Error("gateway did not bind");
    this.url = `http://127.0.0.1:${addr.port}`;
  }

  /** supertest against the running gateway. */
  api(): ReturnType<typeof request> {
    return request(this.url);
  }

  async startRunner(runnerToken: string, serverId: string, opts: RunnerOptions = {}): Promise<Proc> {
    const stateDir = opts.stateDir ?? mkdtempSync(path.join(tmpdir(), "rb-runner-"));
    const port = this.dispatcherPorts[opts.dispatcher ?? 0];
    if (port === undefined) throw new Error("no such dispatcher");
    const proc = startNode(RUNNER_SCRIPT, {
      RUNBRIDGE_DISPATCHER_URL: `http://127.0.0.1:${port}`,
      RUNBRIDGE_RUNNER_TOKEN: runnerToken,
      RUNBRIDGE_STATE_DIR: stateDir,
      RUNBRIDGE_WORKDIR: stateDir,
      RUNBRIDGE_KILL_GRACE_SECONDS: "1",
      LOG_LEVEL: "info",
      ...opts.env,
    }, [], this.opts.node);
    this.runners.push(proc);
    if (opts.waitConnected ?? true) await this.waitRunnerConnected(serverId);
    return proc;
  }

  async waitRunnerConnected(serverId: string, timeoutMs = 15_000): Promise<void> {
    await waitFor(async () => (await this.redis.exists(this.keys.runnerPresence(serverId))) === 1, timeoutMs, `runner of ${serverId} to connect`);
  }

  /**
   * A gateway as a process of its own (its log readable, signals deliverable) on a
   * free port, with this stack's configuration; `url` reaches it over IPv4.
   */
  async startGatewayProcess(extra: Record<string, string> = {}): Promise<{ proc: Proc; url: string; port: number }> {
    const { proc, port } = await startOnFreePort((p) => {
      const started = startNode("apps/gateway/dist/main.js", { ...this.commonEnv(), PORT: String(p), HOST: "127.0.0.1", ...extra }, [], this.opts.node);
      this.gatewayProcs.push(started);
      return started;
    }, /gateway listening/);
    return { proc, url: `http://127.0.0.1:${port}`, port };
  }

  /** Every process's output, for assertions that nothing secret was logged. */
  allLogs(): string {
    return [...this.dispatchers, ...this.runners].map((p) => p.output).join("\n");
  }

  async stop(): Promise<void> {
    try {
      await this.shutDown();
      // Obliterate everything under this stack's prefix.
      let cursor = "0";
      do {
        const [next, found] = await this.redis.scan(cursor, "MATCH", `${this.prefix}:*`, "COUNT", 1000);
        cursor = next;
        if (found.length) await this.redis.del(...found);
      } while (cursor !== "0");
    } finally {
      this.redis.disconnect();
    }
  }

  /** Its processes stopped, the in-process gateway and its connections closed (not the stack's own Redis connection). */
  private async shutDown(): Promise<void> {
    await Promise.all(this.runners.map((r) => r.stop("SIGKILL")));
    await Promise.all([...this.dispatchers, ...this.gatewayProcs].map((p) => p.stop()));
    await new Promise<void>((resolve) => {
      if (!this.http) return resolve();
      this.http.close(() => resolve());
      // A request still held open would otherwise keep the close waiting.
      this.http.closeAllConnections();
    });
    await this.gateway?.close();
  }
}
