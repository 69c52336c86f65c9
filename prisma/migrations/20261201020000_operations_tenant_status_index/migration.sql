-- GET /operations?status=... (management and Automation API, which the dashboard's Logs page polls every few
-- seconds, often with a status filter): newest first, keyset-paginated. Without it a status filter walked
-- (status, created_at) across every tenant, fetching each row to check its tenant, server or key — a rare
-- status for one tenant read every row of that status in the retention window.
-- CONCURRENTLY: operations is the largest table and must stay writable while this builds. It cannot run in
-- a transaction, so it is this file's only statement (Prisma then runs the file outside one). If it fails
-- part-way it leaves an INVALID index: DROP INDEX CONCURRENTLY it, then migrate again.
CREATE INDEX CONCURRENTLY "operations_tenant_id_status_created_at_id_idx" ON "operations"("tenant_id", "status", "created_at" DESC, "id" DESC);
