import type { Logger } from "./logger";

type Step = { name: string; run: () => Promise<unknown> | unknown };

/**
 * One shutdown path per process: steps run in the order registered (stop
 * accepting, drain, close queues, disconnect stores), each bounded in time, then
 * the process exits. A second signal forces an immediate exit.
 */
export class Shutdown {
  private readonly steps: Step[] = [];
  private running: Promise<void> | null = null;

  constructor(
    private readonly logger: Logger,
    private readonly stepTimeoutMs = 30_000,
  ) {}

  add(name: string, run: Step["run"]): this {
    this.steps.push({ name, run });
    return this;
  }

  listen(signals: NodeJS.Signals[] = ["SIGTERM", "SIGINT"]): this {
    for (const sig of signals) {
      process.on(sig, () => {
        if (this.running) {
          this.logger.warn("second signal: exiting now", { signal: sig });
          process.exit(1);
        }
        this.logger.info("shutting down", { signal: sig });
        void this.run().then(() => process.exit(0));
      });
    }
    return this;
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps) {
        const started = Date.now();
        try {
          await Promise.race([
            Promise.resolve().then(step.run),
            new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), this.stepTimeoutMs).unref()),
          ]);
          this.logger.debug("shutdown step done", { step: step.name, ms: Date.now() - started });
        } catch (err) {
          this.logger.error("shutdown step failed", { step: step.name, error: String(err) });
        }
      }
    })();
    return this.running;
  }
}
