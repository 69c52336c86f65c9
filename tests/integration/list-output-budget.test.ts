import { randomUUID } from "node:crypto";
import { createFixture, createOperation } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

/** A byte budget small enough for rows written in milliseconds (the default is 16 MiB). */
const BUDGET = 10_000;

interface Listed {
  operation_id: string;
  result: { stdout?: string; stderr?: string } | null;
}

/**
 * GET /api/automation/v1/operations and GET /api/v1/operations bound a page by the bytes of output it
 * carries as well as by `limit` (OPERATION_LIST_OUTPUT_MAX_BYTES): 200 operations with 1 MiB in each
 * stream were one 400 MiB page, a JSON body past V8's string limit. Following next_cursor still
 * returns every operation exactly once.
 */
describe("operation lists bounded by their output's bytes", () => {
  const suite = useStack({ dispatchers: 0, gateway: { OPERATION_LIST_OUTPUT_MAX_BYTES: String(BUDGET) } });
  let stack: TestStack;
  let fx: Fixture;
  const runId = `budget-${randomUUID()}`;
  /** Newest first, as the lists answer. */
  const made: { id: string; stdout: string | null; stderr: string | null }[] = [];

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
    // "é" is two bytes: the budget counts the bytes stored, not characters.
    const wide = (bytes: number) => "é".repeat(bytes / 2);
    const outputs: [string | null, string | null][] = [
      [wide(3000), "e".repeat(1000)],
      [wide(3000), "e".repeat(1000)],
      [null, null], // still running: no output yet
      [wide(3000), "e".repeat(1000)], // 12,000 bytes with the ones before it: the first page ends before it
      ["\u0001".repeat(25_000), ""], // past the budget on its own: a page of its own all the same
      ...Array.from({ length: 6 }, (_, i): [string, string] => [`line ${i}\n`.repeat(10), i % 2 ? "warn\n" : ""]),
    ];
    const newest = Date.now() - 60_000;
    for (const [i, [stdout, stderr]] of outputs.entries()) {
      const ended = stdout !== null;
      const op = await createOperation(fx.tenant.id, fx.server.id, {
        automationKeyId: fx.key.id,
        runId,
        createdAt: new Date(newest - i * 1000),
        ...(ended ? { status: "completed", exitCode: 0, stdout, stderr, durationMs: 5, completedAt: new Date(newest - i * 1000 + 5) } : {}),
      });
      made.push({ id: op.id, stdout, stderr });
    }
  });

  const lists = {
    automation: (query: string) => stack.api().get(`/api/automation/v1/operations?run_id=${runId}${query}`).set("Authorization", `Bearer ${fx.token}`),
    management: (query: string) => stack.api().get(`/api/v1/operations?run_id=${runId}${query}`).set("Authorization", `Bearer ${fx.apiKey}`),
  };
  const outputBytes = (ops: Listed[]) => ops.reduce((n, o) => n + Buffer.byteLength(o.result?.stdout ?? "") + Buffer.byteLength(o.result?.stderr ?? ""), 0);

  /** Every page of the list, following next_cursor from the first until it is null. */
  async function allPages(list: (typeof lists)[keyof typeof lists], query: string): Promise<Listed[][]> {
    const pages: Listed[][] = [];
    let cursor: string | null = null;
    do {
      const res = await list(`${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
      expect(res.status).toBe(200);
      pages.push(res.body.data as Listed[]);
      cursor = res.body.next_cursor as string | null;
      expect(pages.length).toBeLessThanOrEqual(made.length);
    } while (cursor);
    return pages;
  }

  for (const [api, list] of Object.entries(lists)) {
    it(`ends a page of the ${api} list at the byte budget, and next_cursor goes on from where it stopped`, async () => {
      const first = await list("&limit=200");
      expect(first.status).toBe(200);
      const firstPage = first.body.data as Listed[];
      // Three of the eleven: the fourth would take the page's output to 12,000 bytes.
      expect(firstPage.map((o) => o.operation_id)).toEqual(made.slice(0, 3).map((o) => o.id));
      expect(first.body.next_cursor).toEqual(expect.any(String));
      expect(firstPage[0]?.result).toMatchObject({ stdout: made[0]?.stdout, stderr: made[0]?.stderr });
      expect(firstPage[2]?.result).toBeNull();

      for (const limit of [200, 50, 2]) {
        const pages = await allPages(list, `&limit=${limit}`);
        // Every operation exactly once, in order, each with the output it stored.
        const listed = pages.flat();
        expect(listed.map((o) => o.operation_id)).toEqual(made.map((o) => o.id));
        for (const [i, o] of listed.entries()) {
          const stored = made[i];
          if (stored?.stdout === null) expect(o.result).toBeNull();
          else expect(o.result).toMatchObject({ stdout: stored?.stdout, stderr: stored?.stderr });
        }
        for (const page of pages) {
          expect(page.length).toBeGreaterThan(0);
          expect(page.length).toBeLessThanOrEqual(limit);
          // Over the budget only with the one operation that is always included.
          if (page.length > 1) expect(outputBytes(page)).toBeLessThanOrEqual(BUDGET);
        }
        if (limit >= made.length) expect(pages.map((p) => p.length)).toEqual([3, 1, 1, 6]);
      }
    });

    it(`applies no byte budget to the ${api} list with output=false`, async () => {
      const res = await list("&limit=200&output=false");
      expect(res.status).toBe(200);
      expect((res.body.data as Listed[]).map((o) => o.operation_id)).toEqual(made.map((o) => o.id));
      expect(res.body.next_cursor).toBeNull();
    });
  }
});
