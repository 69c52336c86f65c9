-- AlterTable: an audit event is stamped when it is written, not when its transaction began. Two changes
-- to one row serialize on its lock: the one that waited began first, so CURRENT_TIMESTAMP placed its
-- event before the event of the change it came after (a key.updated listed after the key.revoked that
-- followed it). The previous release runs unchanged on the migrated database.
ALTER TABLE "audit_events" ALTER COLUMN "created_at" SET DEFAULT clock_timestamp();
