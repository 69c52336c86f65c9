import Joi from "joi";
import { uuid } from "./schemas/common";

/**
 * A message on the `runnerTokenRevoked` channel (see redis-keys): the server
 * and the SHA-256 of its runner token that stopped working. The hash (never the
 * token) says which connections to drop, so a runner that already connected
 * with the new token is left alone.
 */
export interface TokenRevoked {
  serverId: string;
  tokenHash: string;
}

const tokenRevokedSchema = Joi.object<TokenRevoked>({
  serverId: uuid().required(),
  tokenHash: Joi.string().hex().lowercase().length(64).required(),
});

export function encodeTokenRevoked(message: TokenRevoked): string {
  return JSON.stringify({ serverId: message.serverId, tokenHash: message.tokenHash });
}

/** Null for anything that is not a well-formed revocation: whatever reaches the channel must not throw inside a dispatcher. */
export function decodeTokenRevoked(message: string): TokenRevoked | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return null;
  }
  const { error, value } = tokenRevokedSchema.validate(parsed, { convert: false, allowUnknown: true });
  return error ? null : { serverId: value.serverId, tokenHash: value.tokenHash };
}
