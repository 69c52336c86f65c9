-- GET /operations?type=... (management and Automation API): newest first, keyset-paginated. Without it a
-- rare type walked the tenant's whole history through (tenant_id, created_at, id), discarding the rest.
-- CONCURRENTLY: operations is the largest table and must stay writable while this builds. It cannot run in
-- a transaction, so it is this file's only statement (Prisma then runs the file outside one). If it fails
-- part-way it leaves an INVALID index: DROP INDEX CONCURRENTLY it, then migrate again.
CREATE INDEX CONCURRENTLY "operations_tenant_id_type_created_at_id_idx" ON "operations"("tenant_id", "type", "created_at" DESC, "id" DESC);
