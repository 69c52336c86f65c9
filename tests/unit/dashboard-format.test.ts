import { duration, exactTime } from "../../apps/dashboard/web/src/format";

/** How the dashboard shows an operation's duration (Logs, Operation page). */
describe("dashboard durations", () => {
  it("shows milliseconds, seconds, then whole minutes and seconds, never 60 s", () => {
    expect([null, 250, 4_500, 59_949, 60_000, 119_400, 119_600, 3_599_700].map(duration)).toEqual(["—", "250 ms", "4.5 s", "59.9 s", "1m 0s", "1m 59s", "2m 0s", "60m 0s"]);
  });

  it("names the time zone of an exact time", () => {
    const shown = exactTime("2026-03-01T02:00:00.000Z");
    const zone = new Intl.DateTimeFormat(undefined, { timeZoneName: "short" }).formatToParts(new Date("2026-03-01T02:00:00.000Z")).find((p) => p.type === "timeZoneName")?.value;
    expect(zone).toBeTruthy();
    expect(shown.endsWith(` ${zone}`)).toBe(true);
    expect(exactTime(null)).toBe("");
  });
});
