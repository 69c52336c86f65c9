import { setTimeout as sleep } from "node:timers/promises";
import { useSignedInStack } from "./browser";

jest.setTimeout(120_000);

/**
 * Views that refresh themselves (API keys every 5 s, Logs every 4 s, Servers
 * every 10 s, a running operation every second) stop asking the API while the
 * page is hidden — a background tab left open all day — and refresh at once
 * when it is shown again. The test drives the page's visibility itself: a
 * headless browser's page never becomes hidden on its own.
 */
describe("dashboard: polling while the tab is in the background", () => {
  const s = useSignedInStack();

  it("stops while hidden and refreshes at once when shown again", async () => {
    await s.page.addInitScript(() => {
      const w = window as unknown as { __visibility: DocumentVisibilityState };
      w.__visibility = "visible";
      Object.defineProperty(document, "visibilityState", { configurable: true, get: () => w.__visibility });
      Object.defineProperty(document, "hidden", { configurable: true, get: () => w.__visibility === "hidden" });
    });
    const setVisibility = (v: "visible" | "hidden") =>
      s.page.evaluate((state) => {
        (window as unknown as { __visibility: string }).__visibility = state;
        document.dispatchEvent(new Event("visibilitychange"));
      }, v);
    const asked: number[] = [];
    s.page.on("request", (r) => {
      if (new URL(r.url()).pathname === "/api/v1/automation-keys" && r.method() === "GET") asked.push(Date.now());
    });

    await s.page.goto(`${s.stack.url}/dashboard/keys?tab=automation`);
    await s.page.getByText("No automation keys yet").waitFor();
    // Visible: it polls (every 5 s).
    const start = asked.length;
    await sleep(5_600);
    expect(asked.length).toBeGreaterThan(start);

    await setVisibility("hidden");
    const hiddenAt = Date.now();
    await sleep(11_000);
    // Two periods and more: nothing was asked once hidden.
    expect(asked.filter((t) => t > hiddenAt)).toEqual([]);

    const shownAt = Date.now();
    await setVisibility("visible");
    await sleep(1_000);
    const afterShown = asked.filter((t) => t >= shownAt);
    expect(afterShown.length).toBe(1);
    // And polling goes on as before.
    await sleep(5_600);
    expect(asked.filter((t) => t >= shownAt).length).toBeGreaterThanOrEqual(2);
  });
});
