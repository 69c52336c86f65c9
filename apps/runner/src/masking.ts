/** Values shorter than this are not masked: masking "1" or "true" would destroy the output. */
export const MIN_MASKED_LENGTH = 4;
export const MASK = "***";

/** A stretch [start, end) of text covered by overlapping secret occurrences: shown as one MASK. */
interface Run {
  start: number;
  end: number;
}

/** What is emitted up to a cut, and how far past the cut the last MASK already reaches. */
interface Rendered {
  out: string;
  covered: number;
}

/**
 * Replaces every occurrence of the given secret values with ***. Every
 * character inside an occurrence is hidden, and overlapping occurrences become
 * one ***: a secret containing another, or overlapping it, never shows a piece
 * of itself. (Replacing one secret after the other would: with "abcdef" and
 * "efgh", "abcdefgh" would become "***gh".)
 */
export class SecretMasker {
  private readonly secrets: string[];
  /** Each secret's failure table (longest proper prefix that is also a suffix, per prefix length), for occurrencesOf. */
  private readonly borders: Int32Array[];
  readonly maxLength: number;

  constructor(values: Iterable<string>) {
    this.secrets = [...new Set([...values].filter((v) => v.length >= MIN_MASKED_LENGTH))].sort((a, b) => b.length - a.length);
    this.borders = this.secrets.map(bordersOf);
    this.maxLength = this.secrets[0]?.length ?? 0;
  }

  get active(): boolean {
    return this.secrets.length > 0;
  }

  mask(text: string): string {
    if (!this.active) return text;
    return this.render(text, 0, text.length).out;
  }

  /**
   * A masker for a stream of chunks. It holds back, *unmasked*, the tail that
   * could be the beginning of a secret whose rest is in a later chunk, and
   * emits only text no occurrence can still extend: the concatenated output
   * is exactly mask() of the whole stream. (Holding back masked text lost
   * that: a short secret inside a long one, masked first, stopped the long
   * one from matching once its rest arrived.)
   */
  streaming(): { push: (chunk: string) => string; flush: () => string } {
    let held = "";
    /** Characters at the start of `held` inside a MASK already emitted. */
    let covered = 0;
    const emit = (text: string, cut: number): string => {
      const r = this.render(text, covered, cut);
      held = text.slice(cut);
      covered = r.covered;
      return r.out;
    };
    return {
      push: (chunk) => {
        if (!this.active) return chunk;
        const text = held + chunk;
        return emit(text, this.pendingFrom(text));
      },
      flush: () => emit(held, held.length),
    };
  }

  /**
   * Masks text[0, cut). Any occurrence not wholly visible in text starts at or
   * after the cut, so everything before it is final. A stretch that crosses
   * the cut is emitted as MASK now, and how far it reaches past the cut is
   * returned, for the next call to hide those characters without a second
   * MASK. The first `covered` characters of text are such a reach.
   */
  private render(text: string, covered: number, cut: number): Rendered {
    let out = "";
    let pos = 0;
    for (const run of this.runs(text, covered)) {
      // The stretch begun in the previous call already has its MASK, wherever the cut falls.
      const continued = covered > 0 && run.start === 0;
      if (run.start >= cut && !continued) break;
      out += text.slice(pos, run.start);
      if (!continued) out += MASK;
      pos = run.end;
    }
    if (pos < cut) out += text.slice(pos, cut);
    return { out, covered: Math.max(0, pos - cut) };
  }

  /**
   * Where the tail of text could be the beginning of a secret not yet wholly
   * printed: nothing from there on is final. Only that tail is held back, so
   * a line without one is shown at once, newline included.
   */
  private pendingFrom(text: string): number {
    for (let p = Math.max(0, text.length - this.maxLength + 1); p < text.length; p++) {
      const first = text.charCodeAt(p);
      const rest = text.length - p;
      // The first-character test keeps the slice off almost every position.
      if (this.secrets.some((s) => s.length > rest && s.charCodeAt(0) === first && s.startsWith(text.slice(p)))) return p;
    }
    return text.length;
  }

  /** Every occurrence of every secret, overlapping ones included, merged into stretches; `covered` is one already begun. */
  private runs(text: string, covered: number): Run[] {
    const found: Run[] = covered > 0 ? [{ start: 0, end: covered }] : [];
    this.secrets.forEach((s, k) => occurrencesOf(s, this.borders[k] as Int32Array, text, (i) => found.push({ start: i, end: i + s.length })));
    found.sort((a, b) => a.start - b.start);
    const merged: Run[] = [];
    for (const r of found) {
      const last = merged.at(-1);
      // Overlapping: one stretch. Merely adjacent: two occurrences side by side, each masked.
      if (last && r.start < last.end) last.end = Math.max(last.end, r.end);
      else merged.push({ ...r });
    }
    return merged;
  }
}

/**
 * The failure table of Knuth-Morris-Pratt: for each prefix length n of s, the length of its longest proper prefix
 * that is also its suffix.
 */
function bordersOf(s: string): Int32Array {
  const border = new Int32Array(s.length + 1);
  border[0] = -1;
  for (let n = 1, k = 0; n < s.length; n++, k++) {
    while (k >= 0 && s.charCodeAt(n) !== s.charCodeAt(k)) k = border[k] as number;
    border[n + 1] = k + 1;
  }
  return border;
}

/**
 * Every start of s in text, overlapping ones included, in one pass over text (Knuth-Morris-Pratt). indexOf from each
 * match + 1 compared up to s.length characters at every position of a repetitive output (a value "abab…" and output
 * "abab…"): 10 MB of such output took the runner 50 s, blocking its event loop.
 */
function occurrencesOf(s: string, border: Int32Array, text: string, found: (start: number) => void): void {
  for (let i = 0, k = 0; i < text.length; i++) {
    while (k >= 0 && text.charCodeAt(i) !== s.charCodeAt(k)) k = border[k] as number;
    k++;
    if (k === s.length) {
      found(i - s.length + 1);
      k = border[k] as number;
    }
  }
}
