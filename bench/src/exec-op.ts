import { spawn } from "node:child_process";
import { HttpClient } from "./http-client";
import type { Operation } from "./load";

/** Answers other than a completed exec, by HTTP status (or "error" for a transport failure); reported, and expected empty. */
export type Rejections = Record<string, number>;

export interface ExecTarget {
  op: Operation;
  rejections: Rejections;
  close: () => void;
}

/**
 * `POST /api/automation/v1/exec` of `true`, answered synchronously. Keys are
 * used round-robin: each is limited to 1,000 requests a minute, and a
 * throughput run must measure the pipeline, never the rate limiter.
 */
export function execTarget(gatewayUrl: string, keys: string[], serverId: string): ExecTarget {
  const client = new HttpClient(gatewayUrl, 64);
  const rejections: Rejections = {};
  let next = 0;
  const op: Operation = async () => {
    const key = keys[next++ % keys.length] as string;
    try {
      const r = await client.request("POST", "/api/automation/v1/exec", key, { server_id: serverId, command: "true", timeout_seconds: 30 });
      if (r.status === 200) {
        const body = JSON.parse(r.body) as { status?: string; exit_code?: number };
        if (body.status === "completed" && body.exit_code === 0) return true;
        rejections[`200 ${body.status ?? "?"}`] = (rejections[`200 ${body.status ?? "?"}`] ?? 0) + 1;
        return false;
      }
      rejections[String(r.status)] = (rejections[String(r.status)] ?? 0) + 1;
      return false;
    } catch {
      rejections.error = (rejections.error ?? 0) + 1;
      return false;
    }
  };
  return { op, rejections, close: () => client.close() };
}

/** The local baseline: `sh -c true` spawned from Node, waiting for its exit. */
export const spawnTrue: Operation = () =>
  new Promise((resolve) => {
    const child = spawn("sh", ["-c", "true"], { stdio: "ignore" });
    child.once("error", () => resolve(false));
    child.once("exit", (code) => resolve(code === 0));
  });

/**
 * An exec request the gateway answers with `expected` before any operation
 * exists — to time the front half of the gateway on its own (see ladder in main.ts).
 */
export function refusedExec(gatewayUrl: string, keys: string[], body: unknown, expected: number): ExecTarget {
  const client = new HttpClient(gatewayUrl, 4);
  const rejections: Rejections = {};
  let next = 0;
  const op: Operation = async () => {
    const key = keys[next++ % keys.length] as string;
    try {
      const r = await client.request("POST", "/api/automation/v1/exec", key, body);
      if (r.status === expected) return true;
      rejections[String(r.status)] = (rejections[String(r.status)] ?? 0) + 1;
      return false;
    } catch {
      rejections.error = (rejections.error ?? 0) + 1;
      return false;
    }
  };
  return { op, rejections, close: () => client.close() };
}
