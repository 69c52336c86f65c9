import { createHmac, timingSafeEqual } from "node:crypto";
import { configure } from "safe-stable-stringify";

/**
 * Signatures on what dispatchers send runners (starts, cancels, ledger queries, "replaced",
 * "token revoked"): a runner acts on none without a valid one.
 *
 * Why: dispatchers reach a runner held by another dispatcher through Redis, and the socket.io
 * adapter re-broadcasts to runners whatever is published on its channels, unauthenticated. Without
 * a signature, whoever could publish on Redis could start a command on every runner (no operation
 * row, no audit event, no key), cancel operations, read results, or send runners away for good.
 *
 * The key is the SHA-256 of the runner's token: PostgreSQL holds it for the server and the runner
 * computes it from its token. Dispatchers keep it out of what the adapter shows other processes (a
 * connection's data and handshake), and the rotation notice names a revoked token by a digest of
 * it. The signed text names the event and the connection (socket id) it is for, so a message seen
 * on Redis cannot be replayed as another event or to another connection; replaying one to its own
 * connection repeats what the runner already did (a start is answered from its ledger).
 */
const canonical = configure({ deterministic: true, circularValue: Error, bigint: false });

/** The field every signed message carries its signature in. */
export const SIGNATURE_FIELD = "sig";

/** Which connection a message is for: its socket id and the SHA-256 (hex) of the token it authenticated with. */
export interface SignatureTarget {
  socketId: string;
  tokenHash: string;
}

function signature(to: SignatureTarget, event: string, payload: object): string {
  const text = canonical({ v: 1, event, socket: to.socketId, payload });
  if (typeof text !== "string") throw new Error(`cannot sign ${event}: its payload does not serialise`);
  return createHmac("sha256", Buffer.from(to.tokenHash, "hex")).update(text).digest("base64url");
}

/** `payload` with its signature for `event` on connection `to`. */
export function signForRunner<P extends object>(to: SignatureTarget, event: string, payload: P): P & { sig: string } {
  return { ...payload, [SIGNATURE_FIELD]: signature(to, event, payload) } as P & { sig: string };
}

/** Whether `message` carries a valid signature for `event` on connection `to` (the runner's check). */
export function validRunnerSignature(to: SignatureTarget, event: string, message: unknown): boolean {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return false;
  const { [SIGNATURE_FIELD]: sig, ...payload } = message as Record<string, unknown>;
  if (typeof sig !== "string") return false;
  let expected: Buffer;
  try {
    expected = Buffer.from(signature(to, event, payload), "base64url");
  } catch {
    return false;
  }
  const given = Buffer.from(sig, "base64url");
  return given.length === expected.length && timingSafeEqual(given, expected);
}
