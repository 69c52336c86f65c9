import { createHash, randomInt, timingSafeEqual } from "node:crypto";
import { crc32 } from "node:zlib";

/**
 * Secret tokens: "<prefix>_" + 36 random base62 chars + 6 base62 chars of CRC32.
 * The checksum lets a secret scanner (or our own auth) reject a mistyped or
 * made-up token without a database lookup, as GitHub's token format does.
 * 36 base62 chars carry ~214 bits of entropy.
 */
export const TokenKind = {
  AutomationKey: "rca",
  ApiKey: "rbk",
  RunnerToken: "rbr",
} as const;
export type TokenKind = (typeof TokenKind)[keyof typeof TokenKind];

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_CHARS = 36;
const CHECKSUM_CHARS = 6;
const DISPLAY_PREFIX_CHARS = 8;

function base62(n: number, width: number): string {
  let out = "";
  for (let i = 0; i < width; i++) {
    out = ALPHABET[n % 62] + out;
    n = Math.floor(n / 62);
  }
  return out;
}

function checksum(body: string): string {
  return base62(crc32(body), CHECKSUM_CHARS);
}

export function generateToken(kind: TokenKind): string {
  let random = "";
  // randomInt is uniform (rejection sampling inside), unlike bytes % 62.
  for (let i = 0; i < RANDOM_CHARS; i++) random += ALPHABET[randomInt(62)];
  const body = `${kind}_${random}`;
  return body + checksum(body);
}

/** Any kind's token; the kinds are TokenKind's values (plain lowercase letters: nothing to escape). */
const TOKEN_RE = new RegExp(`^(${Object.values(TokenKind).join("|")})_[0-9A-Za-z]{${RANDOM_CHARS + CHECKSUM_CHARS}}$`);

/** Shape and checksum check: no I/O, constant work. */
export function isWellFormedToken(token: string, kind: TokenKind): boolean {
  if (!TOKEN_RE.test(token) || !token.startsWith(`${kind}_`)) return false;
  const body = token.slice(0, token.length - CHECKSUM_CHARS);
  return checksum(body) === token.slice(-CHECKSUM_CHARS);
}

export function hashToken(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}

/**
 * How a revoked runner token is named on Redis (the revocation notice): a digest of its SHA-256,
 * which is the key runners check the dispatchers' signatures with and must not travel.
 */
export function revokedTokenDigest(tokenHash: string): string {
  return createHash("sha256").update(`runbridge revoked runner token\0${tokenHash}`, "utf8").digest("hex");
}

/** What the dashboard and lists show: "rca_AbCd1234". */
export function displayPrefix(token: string): string {
  const sep = token.indexOf("_");
  return token.slice(0, sep + 1 + DISPLAY_PREFIX_CHARS);
}

export function hashesEqual(a: string, b: string): boolean {
  const ba = Buffer.from(a, "hex");
  const bb = Buffer.from(b, "hex");
  return ba.length === bb.length && timingSafeEqual(ba, bb);
}
