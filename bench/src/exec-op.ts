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
 * `POST /api/automation/v1/exec` with `body`, keys used round-robin; an answer
 * `accepted` does not like is counted in `rejections` by status ("error" for a
 * transport failure).
 */
function execRequests(gatewayUrl: string, keys: string[], body: unknown, sockets: number, accepted: (status: number, body: string) => string | true): ExecTarget {
  const client = new HttpClient(gatewayUrl, sockets);
  const rejections: Rejections = {};
  let next = 0;
  const op: Operation = async () => {
    const key = keys[next++ % keys.length] as string;
    let verdict: string | true;
    try {
      const r = await client.request("POST", "/api/automation/v1/exec", key, body);
      verdict = accepted(r.status, r.body);
    } catch {
      verdict = "error";
    }
    if (verdict === true) return true;
    rejections[verdict] = (rejections[verdict] ?? 0) + 1;
    return false;
  };
  return { op, rejections, close: () => client.close() };
}

/**
 * Exec of `true`, answered synchronously. Keys are used round-robin: each is
 * limited to 1,000 requests a minute, and a throughput run must measure the
 * pipeline, never the rate limiter.
 */
export function execTarget(gatewayUrl: string, keys: string[], serverId: string): ExecTarget {
  return execRequests(gatewayUrl, keys, { server_id: serverId, command: "true", timeout_seconds: 30 }, 64, (status, text) => {
    if (status !== 200) return String(status);
    const answer = JSON.parse(text) as { status?: string; exit_code?: number };
    return answer.status === "completed" && answer.exit_code === 0 ? true : `200 ${answer.status ?? "?"}`;
  });
}

/**
 * An exec request the gateway answers with `expected` before any operation
 * exists — to time the front half of the gateway on its own (see ladder in main.ts).
 */
export function refusedExec(gatewayUrl: string, keys: string[], body: unknown, expected: number): ExecTarget {
  return execRequests(gatewayUrl, keys, body, 4, (status) => status === expected || String(status));
}
