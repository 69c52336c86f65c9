-- Retention deletes audit events by age across tenants (apps/dispatcher/src/retention.ts).
-- CONCURRENTLY: audit_events can be large and must stay writable while this builds. It cannot run in a
-- transaction, so it is this file's only statement (Prisma then runs the file outside one). If it fails
-- part-way it leaves an INVALID index: DROP INDEX CONCURRENTLY it, then migrate again.
CREATE INDEX CONCURRENTLY "audit_events_created_at_idx" ON "audit_events"("created_at");
