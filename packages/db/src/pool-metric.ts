import { Gauge, type Registry } from "prom-client";
import type { PoolStats } from "./operation-store";

/** What the gauge reads: the operation store's pool, which Prisma shares. */
export interface PoolStatsSource {
  poolStats(): PoolStats;
}

/**
 * `runbridge_<service>_db_pool{state}`, read at scrape time from the pool `source()` returns (the latest
 * one a context was built with: tests build several in one process). A pool whose connections never come
 * back (open at DB_POOL_SIZE, none idle, queries waiting) shows here before every request fails.
 */
export function registerDbPoolGauge(registry: Registry, service: "gateway" | "dispatcher", source: () => PoolStatsSource | undefined): void {
  new Gauge({
    name: `runbridge_${service}_db_pool`,
    help: "This process's PostgreSQL pool: connections open and idle, and queries waiting for a connection",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const stats = source()?.poolStats();
      if (!stats) return;
      this.set({ state: "open" }, stats.open);
      this.set({ state: "idle" }, stats.idle);
      this.set({ state: "waiting" }, stats.waiting);
    },
  });
}
