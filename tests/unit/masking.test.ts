import { MASK, SecretMasker } from "../../apps/runner/src/masking";

/** What a live stream shows: every chunk pushed, then the flush. */
function streamed(masker: SecretMasker, chunks: string[]): string {
  const live = masker.streaming();
  return chunks.map((c) => live.push(c)).join("") + live.flush();
}

/** Text cut at the given positions into consecutive pieces, empty ones included. */
function cuts(text: string, positions: number[]): string[] {
  const bounds = [0, ...positions, text.length];
  return bounds.slice(1).map((end, i) => text.slice(bounds[i], end));
}

/**
 * The masking rule written the slow, obvious way: every character inside any
 * occurrence of a secret is hidden, and each stretch of overlapping
 * occurrences becomes one MASK.
 */
function reference(secrets: string[], text: string): string {
  const ends: number[] = Array.from({ length: text.length }, () => -1);
  for (const s of secrets) for (let i = 0; i + s.length <= text.length; i++) if (text.startsWith(s, i)) ends[i] = Math.max(ends[i]!, i + s.length);
  let out = "";
  let i = 0;
  while (i < text.length) {
    if (ends[i]! < 0) {
      out += text[i];
      i++;
      continue;
    }
    let end = ends[i]!;
    for (let j = i + 1; j < end; j++) end = Math.max(end, ends[j]!);
    out += MASK;
    i = end;
  }
  return out;
}

/** A small deterministic generator, so a failure can be replayed. */
function random(seed: number): (n: number) => number {
  let x = seed;
  return (n) => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x % n;
  };
}

describe("secret masking", () => {
  // A short secret inside a longer one: the long one must be hidden whole, wherever the stream is cut.
  const nested = new SecretMasker(["prod", "prod-Xy7secretsuffix"]);
  const line = "deploy prod-Xy7secretsuffix to prod\n";

  it("masks a secret that contains another whole", () => {
    expect(nested.mask(line)).toBe("deploy *** to ***\n");
  });

  it("live output equals the masked whole text, whichever position splits a secret that contains another", () => {
    for (let at = 0; at <= line.length; at++) {
      expect([at, streamed(nested, cuts(line, [at]))]).toEqual([at, "deploy *** to ***\n"]);
    }
  });

  it("live output equals the masked whole text when a secret spans three chunks", () => {
    const secret = "s3cr3t-Value-0123456789";
    const masker = new SecretMasker([secret, "Value"]);
    const text = `a=${secret};b=${secret}`;
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j++) expect([i, j, streamed(masker, cuts(text, [i, j]))]).toEqual([i, j, "a=***;b=***"]);
    }
  });

  it("masks repeated and overlapping occurrences without leaving a piece of any", () => {
    const masker = new SecretMasker(["abcdef", "efgh", "toktok"]);
    // Overlapping secrets are one stretch of hidden text; "gh" belongs to "efgh" and must not show.
    expect(masker.mask("xx abcdefgh yy")).toBe("xx *** yy");
    // A secret overlapping itself: all of it hidden.
    expect(masker.mask("toktoktok!")).toBe("***!");
    // Repeated side by side, each occurrence is masked.
    expect(masker.mask("abcdefabcdef efgh")).toBe("****** ***");
  });

  it("live output of random text cut at random places equals the masked whole text", () => {
    const secrets = ["abab", "ba-ab", "a-b-a-b-", "bbbb", "ab-b"];
    const masker = new SecretMasker(secrets);
    const next = random(7);
    for (let round = 0; round < 2000; round++) {
      const text = Array.from({ length: next(40) }, () => "ab-"[next(3)]).join("");
      const positions = Array.from({ length: next(5) }, () => next(text.length + 1)).sort((x, y) => x - y);
      const expected = reference(secrets, text);
      expect([text, masker.mask(text)]).toEqual([text, expected]);
      expect([text, positions, streamed(masker, cuts(text, positions))]).toEqual([text, positions, expected]);
    }
  });

  it("holds back only a tail that could begin a secret: the rest of a line is shown at once", () => {
    const live = nested.streaming();
    expect(live.push("token=prod-Xy7secretsuffix\n")).toBe("token=***\n");
    // "pro" may be the beginning of either secret: held until the next chunk says.
    expect(live.push("release 1 to pro")).toBe("release 1 to ");
    expect(live.push("mise\n")).toBe("promise\n");
    expect(live.push("to prod")).toBe("to ");
    expect(live.flush()).toBe("***");
  });

  it("finds every overlapping occurrence of a repetitive value, as an indexOf from each position would", () => {
    // Values and text over a two-letter alphabet: occurrences overlap in every way; checked against a naive search.
    let seed = 7;
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const word = (n: number) => Array.from({ length: n }, () => (random() < 0.5 ? "a" : "b")).join("");
    for (let round = 0; round < 200; round++) {
      const secrets = [word(4 + Math.floor(random() * 4)), word(4 + Math.floor(random() * 6))];
      const text = word(60);
      const found: Array<[number, number]> = [];
      for (const v of secrets) for (let i = text.indexOf(v); i !== -1; i = text.indexOf(v, i + 1)) found.push([i, i + v.length]);
      // Overlapping occurrences are one stretch, one MASK; merely adjacent ones are two.
      const stretches: Array<[number, number]> = [];
      for (const [start, end] of found.sort((x, y) => x[0] - y[0])) {
        const last = stretches.at(-1);
        if (last && start < last[1]) last[1] = Math.max(last[1], end);
        else stretches.push([start, end]);
      }
      let expected = "";
      let pos = 0;
      for (const [start, end] of stretches) {
        expected += text.slice(pos, start) + MASK;
        pos = end;
      }
      expected += text.slice(pos);
      expect({ secrets, text, masked: new SecretMasker(secrets).mask(text) }).toEqual({ secrets, text, masked: expected });
    }
    // A long repetitive value in long repetitive output: one stretch (a search from each match + 1 took seconds).
    expect(new SecretMasker(["ab".repeat(20_000)]).mask(`${"ab".repeat(200_000)}END`)).toBe(`${MASK}END`);
  });

  it("passes text through when there is nothing to mask", () => {
    const masker = new SecretMasker(["abc", ""]);
    expect(masker.active).toBe(false);
    expect(streamed(masker, ["abc ", "def"])).toBe("abc def");
  });
});
