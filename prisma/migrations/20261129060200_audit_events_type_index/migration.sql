-- GET /api/v1/audit-events?type=...: newest first, keyset-paginated.
-- CONCURRENTLY: audit_events can be large and must stay writable while this builds. It cannot run in a
-- transaction, so it is this file's only statement (Prisma then runs the file outside one). If it fails
-- part-way it leaves an INVALID index: DROP INDEX CONCURRENTLY it, then migrate again.
CREATE INDEX CONCURRENTLY "audit_events_tenant_id_type_created_at_id_idx" ON "audit_events"("tenant_id", "type", "created_at" DESC, "id" DESC);
