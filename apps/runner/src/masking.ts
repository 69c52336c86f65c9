/** Values shorter than this are not masked: masking "1" or "true" would destroy the output. */
export const MIN_MASKED_LENGTH = 4;
export const MASK = "***";

/**
 * Replaces every occurrence of the given secret values with ***. Longest first,
 * so a secret containing another is masked whole.
 */
export class SecretMasker {
  private readonly secrets: string[];
  readonly maxLength: number;

  constructor(values: Iterable<string>) {
    this.secrets = [...new Set([...values].filter((v) => v.length >= MIN_MASKED_LENGTH))].sort((a, b) => b.length - a.length);
    this.maxLength = this.secrets[0]?.length ?? 0;
  }

  get active(): boolean {
    return this.secrets.length > 0;
  }

  mask(text: string): string {
    let out = text;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join(MASK);
    return out;
  }

  /**
   * A masker for a stream of chunks: holds back the last maxLength-1 characters
   * so a secret split across two chunks is still masked.
   */
  streaming(): { push: (chunk: string) => string; flush: () => string } {
    let held = "";
    const keep = Math.max(0, this.maxLength - 1);
    return {
      push: (chunk) => {
        if (!this.active) return chunk;
        const masked = this.mask(held + chunk);
        const cut = Math.max(0, masked.length - keep);
        held = masked.slice(cut);
        return masked.slice(0, cut);
      },
      flush: () => {
        const rest = this.mask(held);
        held = "";
        return rest;
      },
    };
  }
}
