import { MASK, MIN_MASKED_LENGTH } from "./masking";

/**
 * Masks the start of truncated output when it is the tail of a secret.
 *
 * The capture drops the head of a long stream by bytes, before masking; when
 * the cut falls inside a secret, what is left ("…9abcdef") no longer matches
 * the secret and would be stored as is. Any length counts: the first
 * characters of truncated output are a fragment of a line anyway, and a short
 * tail still narrows a secret down.
 */
export function maskHeadFragment(text: string, secrets: readonly string[]): string {
  let longest = 0;
  for (const secret of secrets) {
    if (secret.length < MIN_MASKED_LENGTH) continue; // the masker leaves these alone, so must this
    longest = Math.max(longest, suffixThatPrefixes(secret, text.slice(0, secret.length)));
  }
  return longest > 0 ? MASK + text.slice(longest) : text;
}

/**
 * Length of the longest suffix of `s` that is a prefix of `p` (KMP: linear,
 * where trying every suffix would be quadratic in a 64 KiB secret).
 */
export function suffixThatPrefixes(s: string, p: string): number {
  if (p.length === 0) return 0;
  const fail = failureTable(p);
  let matched = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (matched === p.length) matched = fail[matched - 1] as number; // a full match mid-`s` is not a suffix yet
    while (matched > 0 && p.charCodeAt(matched) !== ch) matched = fail[matched - 1] as number;
    if (p.charCodeAt(matched) === ch) matched += 1;
  }
  return matched;
}

/** fail[i]: length of the longest proper prefix of p[0..i] that is also its suffix. */
function failureTable(p: string): number[] {
  const fail = [0];
  let k = 0;
  for (let i = 1; i < p.length; i++) {
    while (k > 0 && p.charCodeAt(i) !== p.charCodeAt(k)) k = fail[k - 1] as number;
    if (p.charCodeAt(i) === p.charCodeAt(k)) k += 1;
    fail.push(k);
  }
  return fail;
}
