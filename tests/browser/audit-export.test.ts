import { readFileSync } from "node:fs";
import { testPrisma } from "../helpers/db";
import { useSignedInStack, waitForText } from "./browser";

jest.setTimeout(120_000);

const DAY = 86_400_000;

/**
 * The Audit page's day range (UTC, both days included) and its export: every
 * event the filters select, across pages, downloaded as JSON Lines.
 */
describe("dashboard: audit trail by days, exported", () => {
  const s = useSignedInStack();
  // Recent days (no retention pass of another suite removes them), at midnight UTC.
  const day = new Date(Math.floor(Date.now() / DAY) * DAY - 3 * DAY);
  const iso = (d: Date) => d.toISOString().slice(0, 10);
  const dayBefore = new Date(day.getTime() - DAY);
  const dayAfter = new Date(day.getTime() + DAY);
  let inDay: string[] = [];

  beforeAll(async () => {
    const busy = Array.from({ length: 250 }, (_, i) => ({ tenantId: s.tenantId, type: "export.bulk", createdAt: new Date(day.getTime() + i * 60_000) }));
    // Either side of the day, to the millisecond.
    const around = [new Date(day.getTime() - 1), dayAfter].map((createdAt) => ({ tenantId: s.tenantId, type: "export.bulk", createdAt }));
    await testPrisma().auditEvent.createMany({ data: [...busy, ...around] });
    inDay = (await testPrisma().auditEvent.findMany({ where: { tenantId: s.tenantId, createdAt: { gte: day, lt: dayAfter } }, select: { id: true } })).map((e) => e.id);
  });

  it("shows one day's events and downloads all of them, past the first page", async () => {
    expect(inDay).toHaveLength(250);
    await s.page.goto(`${s.stack.url}/dashboard/audit`);
    await s.page.getByLabel("From (UTC)").fill(iso(day));
    await s.page.getByLabel("To (UTC, included)").fill(iso(day));
    await s.page.waitForURL(new RegExp(`from=${iso(day)}&to=${iso(day)}`));
    const table = s.page.getByRole("table", { name: "Audit events" });
    // Newest first: the day's last event, 249 minutes after its midnight.
    await waitForText(table, new RegExp(`export\\.bulk`));
    const firstTime = await table.locator("tbody tr").first().locator("time").getAttribute("datetime");
    expect(firstTime).toBe(new Date(day.getTime() + 249 * 60_000).toISOString());
    await s.page.getByRole("button", { name: "Load older events" }).waitFor();

    const [download] = await Promise.all([s.page.waitForEvent("download"), s.page.getByRole("button", { name: "Export JSON Lines" }).click()]);
    expect(download.suggestedFilename()).toBe(`audit-events-from-${iso(day)}-to-${iso(day)}.jsonl`);
    const lines = readFileSync((await download.path())!, "utf8").trim().split("\n");
    const events = lines.map((l) => JSON.parse(l) as { id: string; type: string; created_at: string });
    expect(events).toHaveLength(250);
    expect(new Set(events.map((e) => e.id))).toEqual(new Set(inDay));
    expect(events.every((e) => e.type === "export.bulk" && e.created_at.startsWith(iso(day)))).toBe(true);
    await waitForText(s.page.getByRole("status"), new RegExp(`Exported 250 events to audit-events-from-${iso(day)}-to-${iso(day)}\\.jsonl`));
  });

  it.each([
    ["the last day is before the first", () => `from=${iso(dayAfter)}&to=${iso(dayBefore)}`, /“To” day is before the “From” day/],
    ["a month that does not exist (a typed URL)", () => "to=2026-13-01", /“To” is not a day: 2026-13-01/],
    ["a day that does not exist", () => "from=2026-02-30", /“From” is not a day: 2026-02-30/],
  ])("says so when %s, and exports nothing", async (_what, query, note) => {
    await s.page.goto(`${s.stack.url}/dashboard/audit?${query()}`);
    await waitForText(s.page.getByRole("alert").first(), note);
    expect(await s.page.getByRole("button", { name: "Export JSON Lines" }).isDisabled()).toBe(true);
    await s.page.getByText("No events match these filters").waitFor();
  });
});
