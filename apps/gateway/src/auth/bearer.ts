import { UnauthorizedError } from "../errors";

/** The token of an `Authorization: Bearer ...` header value. */
export function bearerToken(header: string | undefined, example: string): string {
  if (!header) throw new UnauthorizedError(`Missing Authorization header: send "Authorization: Bearer ${example}"`);
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m?.[1]) throw new UnauthorizedError(`Malformed Authorization header: expected "Bearer ${example}"`);
  return m[1];
}
