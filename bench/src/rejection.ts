import { execFile } from "node:child_process";
import path from "node:path";
import { ROOT, onCleanup } from "./procs";

export interface RejectionResult {
  expectedStatus: number;
  connections: number;
  durationS: number;
  /** Answers with the expected status per second. */
  perSecond: number;
  total: number;
  /** Answers by status code, to show nothing else (a 500, a 200) was counted. */
  statusCodes: Record<string, number>;
  errors: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

interface AutocannonJson {
  duration: number;
  errors: number;
  timeouts: number;
  statusCodeStats?: Record<string, { count: number }>;
  latency: { p50: number; p99: number };
  requests: { total: number };
}

/**
 * autocannon (its CLI, in its own process, so the load generator does not
 * share an event loop with anything measured) against an exec request that
 * the gateway must refuse.
 */
export function rejectionRate(url: string, token: string, body: unknown, expectedStatus: number, connections: number, durationS: number): Promise<RejectionResult> {
  const bin = path.join(ROOT, "node_modules/autocannon/autocannon.js");
  const args = [bin, "-j", "-c", String(connections), "-d", String(durationS), "-m", "POST", "-H", `Authorization=Bearer ${token}`, "-H", "Content-Type=application/json", "-b", JSON.stringify(body), url];
  let done = false;
  return new Promise((resolve, reject) => {
    const child = execFile(process.execPath, args, { maxBuffer: 16 * 1024 * 1024, timeout: (durationS + 60) * 1000 }, (err, stdout) => {
      done = true;
      if (err) return reject(new Error(`autocannon failed: ${err.message}`));
      const r = JSON.parse(stdout) as AutocannonJson;
      const statusCodes: Record<string, number> = {};
      for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count;
      const expected = statusCodes[String(expectedStatus)] ?? 0;
      resolve({
        expectedStatus,
        connections,
        durationS: r.duration,
        perSecond: expected / r.duration,
        total: r.requests.total,
        statusCodes,
        errors: r.errors + r.timeouts,
        latencyP50Ms: r.latency.p50,
        latencyP99Ms: r.latency.p99,
      });
    });
    // Ctrl-C in the middle of a run stops the load generator too.
    onCleanup(() => {
      if (!done) child.kill("SIGKILL");
    });
  });
}
