import Joi from "joi";
import { uuid } from "./schemas/common";

/**
 * A message on the `runnerTokenRevoked` channel (see redis-keys): the server,
 * and which of its runner tokens stopped working, so that a runner that already
 * connected with the new token is left alone. Named by a digest of the token's
 * SHA-256 (@runbridge/common's revokedTokenDigest), not the hash itself: the
 * hash is the key runners check the dispatchers' signatures with, and the
 * connections made with that token are still open while the message travels.
 * Gateways of earlier releases sent `tokenHash`; both are read.
 */
export interface TokenRevoked {
  serverId: string;
  tokenDigest: string;
}

const hex64 = () => Joi.string().hex().lowercase().length(64);
const tokenRevokedSchema = Joi.object<{ serverId: string; tokenDigest?: string; tokenHash?: string }>({
  serverId: uuid().required(),
  tokenDigest: hex64(),
  tokenHash: hex64(),
}).xor("tokenDigest", "tokenHash");

export function encodeTokenRevoked(message: TokenRevoked): string {
  return JSON.stringify({ serverId: message.serverId, tokenDigest: message.tokenDigest });
}

/**
 * Null for anything that is not a well-formed revocation: whatever reaches the channel must not
 * throw inside a dispatcher. `digestOf` turns an earlier release's `tokenHash` into the digest.
 */
export function decodeTokenRevoked(message: string, digestOf: (tokenHash: string) => string): TokenRevoked | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return null;
  }
  const { error, value } = tokenRevokedSchema.validate(parsed, { convert: false, allowUnknown: true });
  if (error) return null;
  const tokenDigest = value.tokenDigest ?? (value.tokenHash === undefined ? undefined : digestOf(value.tokenHash));
  return tokenDigest === undefined ? null : { serverId: value.serverId, tokenDigest };
}
