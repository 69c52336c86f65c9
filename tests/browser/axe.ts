import { readFileSync } from "node:fs";
import type { AxeResults, ImpactValue, RunOptions } from "axe-core";
import type { Page } from "playwright-core";

/** What the dashboard is held to: WCAG 2.0 and 2.1, levels A and AA, and axe's best practices. */
export const AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];

/** The rules that depend on colours only: all the dark theme can break that the light one does not. */
const COLOUR_RULES = ["color-contrast", "link-in-text-block"];

let axeSource: string | undefined;

/**
 * Loads axe into the page. Not with page.addScriptTag: it adds an inline
 * <script>, which the dashboard's Content-Security-Policy (script-src 'self')
 * refuses; an evaluation through the DevTools protocol is not subject to it,
 * so the page is checked with its real headers.
 */
async function injectAxe(page: Page): Promise<void> {
  if (await page.evaluate(() => "axe" in window)) return;
  axeSource ??= readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
  await page.evaluate(axeSource);
}

async function runAxe(page: Page, options: RunOptions): Promise<AxeResults["violations"]> {
  await injectAxe(page);
  return page.evaluate(
    // The page's own axe, which injectAxe put on window.
    (opts) => (window as unknown as { axe: { run: (ctx: Document, o: RunOptions) => Promise<AxeResults> } }).axe.run(document, opts).then((r) => r.violations),
    options,
  );
}

interface Found {
  where: string;
  rule: string;
  impact: ImpactValue | null | undefined;
  help: string;
  helpUrl: string;
  target: string;
  why: string;
}

/**
 * Collects axe's violations over the states a test visits, and reports them
 * grouped by rule, each element with the states it was found in, so one
 * failure lists everything there is to fix.
 */
export class A11yAudit {
  private found: Found[] = [];
  private checked: string[] = [];

  /** Checks the page as it is now, in the light theme and (for colours) in the dark one; `where` names the state in the report. */
  async check(page: Page, where: string): Promise<void> {
    this.checked.push(where);
    try {
      await page.emulateMedia({ colorScheme: "light" });
      this.add(where, "", await runAxe(page, { runOnly: { type: "tag", values: AXE_TAGS }, resultTypes: ["violations"] }));
      await page.emulateMedia({ colorScheme: "dark" });
      this.add(where, " (dark theme)", await runAxe(page, { runOnly: { type: "rule", values: COLOUR_RULES }, resultTypes: ["violations"] }));
    } finally {
      await page.emulateMedia({ colorScheme: "light" });
    }
  }

  private add(where: string, theme: string, violations: AxeResults["violations"]): void {
    for (const v of violations) {
      for (const n of v.nodes) {
        this.found.push({
          where: where + theme,
          rule: v.id,
          impact: v.impact,
          help: v.help,
          helpUrl: v.helpUrl,
          target: n.target.map(String).join(" "),
          why: (n.failureSummary ?? "").replace(/\s*\n\s*/g, " ").trim(),
        });
      }
    }
  }

  /** The violations found since the last call, as a readable report ("" when none), and forgets them. */
  take(): string {
    const found = this.found;
    const checked = this.checked.length;
    this.found = [];
    this.checked = [];
    if (found.length === 0) return "";
    const byRule = new Map<string, Found[]>();
    for (const f of found) byRule.set(f.rule, [...(byRule.get(f.rule) ?? []), f]);
    const lines = [`axe found ${byRule.size} rule(s) violated in ${new Set(found.map((f) => f.where)).size} of ${checked} state(s) checked:`];
    const some = (items: string[], max: number) => (items.length > max ? `${items.slice(0, max).join("; ")}; and ${items.length - max} more` : items.join("; "));
    for (const [rule, list] of byRule) {
      const first = list[0]!;
      lines.push("", `${rule} (${first.impact ?? "no impact given"}): ${first.help} — ${first.helpUrl}`);
      // One entry per distinct reason: a badge repeated on every row of a list is one thing to fix.
      const byWhy = new Map<string, Found[]>();
      for (const f of list) byWhy.set(f.why, [...(byWhy.get(f.why) ?? []), f]);
      for (const [why, at] of byWhy) {
        lines.push(`  ${why}`, `    elements: ${some([...new Set(at.map((f) => f.target))], 4)}`, `    in: ${some([...new Set(at.map((f) => f.where))], 6)}`);
      }
    }
    return lines.join("\n");
  }

  /** Fails with the report when anything was found since the last call. */
  expectNone(): void {
    const report = this.take();
    if (report) throw new Error(report);
  }
}

/** How the focused element shows its focus: enough to tell whether a keyboard user can see where they are. */
export interface FocusLook {
  element: string;
  outline: string;
  /** Contrast of the outline against what is around it (WCAG 1.4.11 asks 3:1 of a focus indicator). */
  contrast: number;
}

export async function focusLook(page: Page): Promise<FocusLook | null> {
  return page.evaluate(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return null;
    const rgb = (c: string): [number, number, number, number] => {
      const m = c.match(/[\d.]+/g)?.map(Number) ?? [0, 0, 0, 0];
      return [m[0] ?? 0, m[1] ?? 0, m[2] ?? 0, m[3] ?? 1];
    };
    const luminance = ([r, g, b]: number[]) =>
      [r, g, b].map((v) => ((v ?? 0) / 255 <= 0.04045 ? (v ?? 0) / 255 / 12.92 : (((v ?? 0) / 255 + 0.055) / 1.055) ** 2.4)).reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i]!, 0);
    // The outline is drawn outside the element (outline-offset), over its surroundings: the nearest opaque background around it.
    let around: Element | null = el.parentElement;
    let bg = "rgb(255, 255, 255)";
    for (; around; around = around.parentElement) {
      const c = getComputedStyle(around).backgroundColor;
      if (rgb(c)[3] > 0.5) {
        bg = c;
        break;
      }
    }
    const s = getComputedStyle(el);
    const a = luminance(rgb(s.outlineColor));
    const b = luminance(rgb(bg));
    const visible = s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2;
    return {
      element: `${el.tagName.toLowerCase()} "${(el.getAttribute("aria-label") ?? el.textContent ?? "").trim().slice(0, 40)}"`,
      outline: `${s.outlineStyle} ${s.outlineWidth} ${s.outlineColor} on ${bg}`,
      contrast: visible ? Math.round(((Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)) * 100) / 100 : 0,
    };
  });
}
