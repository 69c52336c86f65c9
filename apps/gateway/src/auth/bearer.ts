import type { Request } from "express";
import { UnauthorizedError } from "../errors";

export function bearerToken(req: Request, example: string): string {
  const header = req.get("authorization");
  if (!header) throw new UnauthorizedError(`Missing Authorization header: send "Authorization: Bearer ${example}"`);
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!m?.[1]) throw new UnauthorizedError(`Malformed Authorization header: expected "Bearer ${example}"`);
  return m[1];
}
