import { Client } from "pg";
import { percentile } from "./stats";

export interface Stage {
  stage: string;
  p50: number;
  p95: number;
}

const STAGES: [string, string][] = [
  ["accepted → dispatched (gateway insert + enqueue, BullMQ pick-up, dispatcher's delivery until marked dispatched)", "EXTRACT(EPOCH FROM dispatched_at - created_at) * 1000"],
  ["dispatched → started (socket.io to the runner, its ledger, spawn)", "EXTRACT(EPOCH FROM started_at - dispatched_at) * 1000"],
  ["running (the runner's own duration_ms of `true`)", "duration_ms"],
  ["ended → recorded (result back to the dispatcher, finish transaction)", "EXTRACT(EPOCH FROM completed_at - started_at) * 1000 - duration_ms"],
  ["accepted → recorded (all of the above)", "EXTRACT(EPOCH FROM completed_at - created_at) * 1000"],
];

/**
 * Where an exec's time goes, from the timestamps each part of the pipeline
 * records on the operation row (one clock: everything runs on this box).
 * created_at is the gateway's insert transaction; what is left of the
 * client's latency is the gateway before the insert (auth, lookups, presence)
 * and after the result (notification, reload, answer).
 */
export async function stageBreakdown(databaseUrl: string, from: Date, to: Date): Promise<{ operations: number; stages: Stage[] }> {
  const c = new Client({ connectionString: databaseUrl });
  await c.connect();
  try {
    const cols = STAGES.map(([, expr], i) => `${expr} AS s${i}`).join(", ");
    const r = await c.query<Record<string, string | number | null>>(
      `SELECT ${cols} FROM operations WHERE type = 'exec' AND status = 'completed' AND created_at >= $1 AND created_at <= $2 AND dispatched_at IS NOT NULL AND started_at IS NOT NULL`,
      [from, to],
    );
    const stages = STAGES.map(([stage], i) => {
      const values = r.rows.map((row) => Number(row[`s${i}`])).filter(Number.isFinite).sort((a, b) => a - b);
      return { stage, p50: percentile(values, 50), p95: percentile(values, 95) };
    });
    return { operations: r.rowCount ?? 0, stages };
  } finally {
    await c.end();
  }
}
