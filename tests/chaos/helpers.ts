import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { isTerminal } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { waitFor } from "../helpers/processes";

/**
 * Executions are counted on the runner side: each command appends its token
 * to a shared file when (and only if) it really runs.
 */
export class ExecutionLog {
  readonly dir = mkdtempSync(path.join(tmpdir(), "rb-chaos-"));
  readonly file = path.join(this.dir, "executions.log");

  command(token: string, sleepSeconds = 0): string {
    return `${sleepSeconds > 0 ? `sleep ${sleepSeconds}; ` : ""}echo ${token} >> ${this.file}; echo ran ${token}`;
  }

  counts(): Map<string, number> {
    const counts = new Map<string, number>();
    if (!existsSync(this.file)) return counts;
    for (const line of readFileSync(this.file, "utf8").split("\n").filter(Boolean)) counts.set(line, (counts.get(line) ?? 0) + 1);
    return counts;
  }
}

export async function waitAllTerminal(ids: string[], timeoutMs: number): Promise<Map<string, { status: string; error: string | null; exitCode: number | null; stdout: string | null }>> {
  await waitFor(
    async () => {
      const rows = await testPrisma().operation.findMany({ where: { id: { in: ids } }, select: { status: true } });
      return rows.length === ids.length && rows.every((r) => isTerminal(r.status));
    },
    timeoutMs,
    "every operation to reach a terminal state",
  );
  const rows = await testPrisma().operation.findMany({ where: { id: { in: ids } } });
  return new Map(rows.map((r) => [r.id, { status: r.status, error: r.error, exitCode: r.exitCode, stdout: r.stdout }]));
}

/** One line of figures per scenario, collected into docs/reliability.md. */
export function report(scenario: string, figures: Record<string, unknown>): void {
  process.stdout.write(`CHAOS ${JSON.stringify({ scenario, ...figures })}\n`);
}
