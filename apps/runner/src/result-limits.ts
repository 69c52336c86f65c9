import { RunnerMessageMaxBytes, storableText } from "@runbridge/contracts";

/**
 * What a stream's captured text must become before it goes into a result.
 *
 * The output cap counts raw bytes, but the result travels as one JSON
 * socket.io packet and is stored in PostgreSQL `text` columns:
 * - a control byte becomes `\u00XX` in JSON (6 bytes), an invalid UTF-8 byte
 *   U+FFFD (3 bytes), so a capped stream can grow several times over and a
 *   packet above RunnerMessageMaxBytes closes the socket;
 *   the runner then re-sends the same result on every reconnect, forever;
 * - `text` cannot hold U+0000: the dispatcher could never store the result.
 */

/**
 * Budget for one stream's JSON-encoded size: the two streams share what the
 * message limit leaves after 1 MiB for the other fields and the framing.
 */
export const STREAM_JSON_BUDGET_BYTES = (RunnerMessageMaxBytes - 1024 * 1024) / 2;

/** Bytes that `\b \t \n \f \r` take in JSON; every other control character takes 6 (`\u00XX`). */
const SHORT_ESCAPES = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d]);

/** JSON-encoded UTF-8 size of one UTF-16 code unit that is not part of a surrogate pair. */
function unitCost(c: number): number {
  if (c < 0x20) return SHORT_ESCAPES.has(c) ? 2 : 6;
  if (c === 0x22 || c === 0x5c) return 2; // `"` and `\` are escaped
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  if (c >= 0xd800 && c <= 0xdfff) return 6; // a lone surrogate is written as `\uXXXX`
  return 3;
}

/** The character ending just before `end`: how many code units it spans and what it costs in JSON. */
function lastChar(text: string, end: number): { width: number; cost: number } {
  const low = text.charCodeAt(end - 1);
  const high = end >= 2 ? text.charCodeAt(end - 2) : 0;
  const isPair = low >= 0xdc00 && low <= 0xdfff && high >= 0xd800 && high <= 0xdbff;
  return isPair ? { width: 2, cost: 4 } : { width: 1, cost: unitCost(low) };
}

/**
 * The longest tail of `text` whose JSON encoding fits `budget` bytes, cut at a
 * character boundary. The head goes, as with the byte cap: failures are at the end.
 */
export function keepEncodedTail(text: string, budget: number): { text: string; cut: boolean } {
  // No character costs more than 6 bytes, so most output needs no walk at all.
  if (text.length * 6 <= budget) return { text, cut: false };
  let start = text.length;
  let used = 0;
  while (start > 0) {
    const { width, cost } = lastChar(text, start);
    if (used + cost > budget) return { text: text.slice(start), cut: true };
    used += cost;
    start -= width;
  }
  return { text, cut: false };
}

/** A stream's text made storable and small enough to send; `cut` says whether its head had to go. */
export function deliverableText(text: string): { text: string; cut: boolean } {
  return keepEncodedTail(storableText(text), STREAM_JSON_BUDGET_BYTES);
}
