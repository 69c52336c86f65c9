import { FINISHED_ROW_MAX_BYTES, decodeFinished, encodeFinished } from "@runbridge/contracts";
import { reviveOperation } from "@runbridge/db";

describe("operation-finished notifications", () => {
  const row = {
    id: "9b2f6c1e-1f0a-4d6e-9a57-3c1b8f0e2d11",
    status: "completed",
    exitCode: 0,
    stdout: "line 1\nline 2\n",
    params: { container_name: "web" },
    createdAt: new Date("2026-11-28T10:00:00.000Z"),
    deliverBy: new Date("2026-11-28T10:00:30.000Z"),
    dispatchedAt: new Date("2026-11-28T10:00:00.004Z"),
    startedAt: null,
    completedAt: new Date("2026-11-28T10:00:00.012Z"),
  };

  it("carries the finished row, dates included, through the message", () => {
    const { operationId, rowJson } = decodeFinished(encodeFinished(row.id, row));
    expect(operationId).toBe(row.id);
    const revived = reviveOperation(rowJson ?? "");
    expect(revived).toMatchObject({ id: row.id, status: "completed", exitCode: 0, stdout: "line 1\nline 2\n", params: { container_name: "web" }, startedAt: null });
    expect(revived.completedAt).toEqual(row.completedAt);
    expect(revived.createdAt).toBeInstanceOf(Date);
  });

  it("sends a bare id for rows too large to carry, and for callers without a row", () => {
    const big = { ...row, stdout: "x".repeat(FINISHED_ROW_MAX_BYTES) };
    expect(decodeFinished(encodeFinished(row.id, big))).toEqual({ operationId: row.id });
    expect(decodeFinished(encodeFinished(row.id))).toEqual({ operationId: row.id });
  });
});
