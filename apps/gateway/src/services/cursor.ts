import { storableInstant, type CreatedWindowQuery } from "@runbridge/contracts";
import { ValidationError } from "../errors";

/** Opaque keyset cursor over (created_at desc, id desc). */
export function encodeCursor(row: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([row.createdAt.toISOString(), row.id])).toString("base64url");
}

export function decodeCursor(cursor: string): { createdAt: Date; id: string } | null {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    if (!Array.isArray(parsed) || parsed.length !== 2) return null;
    const [at, id] = parsed as unknown[];
    if (typeof at !== "string" || typeof id !== "string" || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id)) return null;
    const createdAt = new Date(at);
    return storableInstant(createdAt) ? { createdAt, id } : null;
  } catch {
    return null;
  }
}

/**
 * The where-clause of the rows after `cursor` in (created_at desc, id desc) order; 422 for a cursor
 * this API did not return. The `lte` bound says the same as the OR, but PostgreSQL can start an
 * index range scan at it; with the OR alone, a page a million rows deep read and discarded the
 * million newer rows first (seconds per page, past the statement timeout on big tenants).
 */
export function keysetAfter(cursor: string): { createdAt: { lte: Date }; OR: [{ createdAt: { lt: Date } }, { createdAt: Date; id: { lt: string } }] } {
  const c = decodeCursor(cursor);
  if (!c) throw new ValidationError('"cursor" is not a cursor this API returned');
  return { createdAt: { lte: c.createdAt }, OR: [{ createdAt: { lt: c.createdAt } }, { createdAt: c.createdAt, id: { lt: c.id } }] };
}

/** Splits `limit + 1` fetched rows into the page and the cursor of the next one (null on the last page). */
export function pageOf<T extends { createdAt: Date; id: string }>(rows: T[], limit: number): { page: T[]; nextCursor: string | null } {
  const page = rows.slice(0, limit);
  const last = page[page.length - 1];
  return { page, nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
}

/**
 * The where-clause of `created_from` / `created_before` ([from, before), both
 * already canonical ISO strings), or null without either. Its own clause, to
 * go beside a cursor's under AND: both bound `created_at`.
 */
function createdWindow(q: CreatedWindowQuery): { createdAt: { gte?: Date; lt?: Date } } | null {
  if (!q.created_from && !q.created_before) return null;
  const from = q.created_from ? new Date(q.created_from) : undefined;
  const before = q.created_before ? new Date(q.created_before) : undefined;
  if (from && before && from >= before) throw new ValidationError('"created_before" must be later than "created_from"');
  return { createdAt: { ...(from && { gte: from }), ...(before && { lt: before }) } };
}

/**
 * What a keyset-paginated list's `cursor` and created_at window add to its own conditions: each a
 * condition of its own, to go beside them under AND (both bound `created_at`, which one object would
 * hold only once).
 */
export function pageBounds(q: CreatedWindowQuery & { cursor?: string }): (ReturnType<typeof keysetAfter> | NonNullable<ReturnType<typeof createdWindow>>)[] {
  const window = createdWindow(q);
  return [...(q.cursor ? [keysetAfter(q.cursor)] : []), ...(window ? [window] : [])];
}
