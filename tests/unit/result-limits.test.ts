import { randomBytes } from "node:crypto";
import { maskHeadFragment, suffixThatPrefixes } from "../../apps/runner/src/head-fragment";
import { storableText } from "@runbridge/contracts";
import { STREAM_JSON_BUDGET_BYTES, deliverableText, keepEncodedTail } from "../../apps/runner/src/result-limits";

const jsonBytes = (s: string): number => Buffer.byteLength(JSON.stringify(s)) - 2; // without the quotes

describe("keepEncodedTail", () => {
  it("keeps text whose JSON encoding fits, untouched", () => {
    expect(keepEncodedTail("a\u0001b", 8)).toEqual({ text: "a\u0001b", cut: false });
  });

  it("counts JSON escapes and UTF-8 widths exactly as JSON.stringify writes them", () => {
    const sample = 'x"\\\n\t\u0000\u001f\u00e9\u20ac\u{1f600}\ud800z\udc00';
    for (let budget = 0; budget <= jsonBytes(sample); budget++) {
      const kept = keepEncodedTail(sample, budget);
      expect(jsonBytes(kept.text)).toBeLessThanOrEqual(budget);
      expect(sample.endsWith(kept.text)).toBe(true);
      expect(kept.cut).toBe(kept.text !== sample);
      // The next character would not have fitted: nothing is dropped needlessly.
      const rest = sample.slice(0, sample.length - kept.text.length);
      const next = rest.endsWith("\u{1f600}") ? 2 : 1;
      if (kept.cut) expect(jsonBytes(sample.slice(rest.length - next))).toBeGreaterThan(budget);
    }
  });

  it("never splits a surrogate pair", () => {
    const kept = keepEncodedTail("\u{1f600}\u{1f600}", 5);
    expect(kept).toEqual({ text: "\u{1f600}", cut: true });
  });
});

describe("deliverableText", () => {
  it("replaces NUL, which PostgreSQL text cannot hold", () => {
    expect(storableText("a\u0000b\u0000")).toBe("a\uFFFDb\uFFFD");
  });

  it("bounds a stream of random bytes, decoded as the capture does, to the JSON budget", () => {
    const text = randomBytes(1024 * 1024).toString("utf8");
    expect(jsonBytes(text)).toBeGreaterThan(STREAM_JSON_BUDGET_BYTES);
    const out = deliverableText(text);
    expect(out.cut).toBe(true);
    expect(jsonBytes(out.text)).toBeLessThanOrEqual(STREAM_JSON_BUDGET_BYTES);
    expect(out.text.includes("\u0000")).toBe(false);
    expect(storableText(text).endsWith(out.text)).toBe(true);
  });
});

describe("maskHeadFragment", () => {
  const secret = "canary-0123456789abcdef";

  it("masks a leading tail of a secret", () => {
    expect(maskHeadFragment("9abcdef and more", [secret])).toBe("*** and more");
    expect(maskHeadFragment("f\n", [secret])).toBe("***\n");
  });

  it("masks the longest tail when several secrets match", () => {
    expect(maskHeadFragment("45678-rest", ["xx678", "abc45678"])).toBe("***-rest");
  });

  it("leaves text alone that starts with no tail of a secret", () => {
    expect(maskHeadFragment("0123456789abcde!", [secret])).toBe("0123456789abcde!");
    expect(maskHeadFragment("whatever", [])).toBe("whatever");
  });

  it("ignores values too short for the masker to mask", () => {
    expect(maskHeadFragment("yes, done", ["yes"])).toBe("yes, done");
  });

  it("finds the same fragment as trying every suffix", () => {
    const alphabet = "ab";
    const pick = (n: number) => Array.from({ length: n }, () => alphabet[Math.floor(Math.random() * 2)]).join("");
    for (let i = 0; i < 500; i++) {
      const s = pick(1 + Math.floor(Math.random() * 12));
      const p = pick(Math.floor(Math.random() * 12));
      let brute = 0;
      for (let k = 1; k <= Math.min(s.length, p.length); k++) if (p.startsWith(s.slice(-k))) brute = k;
      expect([s, p, suffixThatPrefixes(s, p)]).toEqual([s, p, brute]);
    }
  });

  it("stays linear on a long repetitive secret", () => {
    const long = "a".repeat(64 * 1024);
    const t0 = Date.now();
    expect(maskHeadFragment(`${"a".repeat(64 * 1024 - 1)}b`, [long])).toBe("***b");
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
