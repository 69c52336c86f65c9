-- AlterTable: what keeps the runner of the server from taking operations (its state directory cannot be
-- written...), as the runner last reported it, and since when (NULL: nothing, or a runner too old to say),
-- runner_health_seq is the admission number of the connection that reported it, so that a report of an
-- older connection never replaces the report of a newer one. The previous release runs on the migrated database.
ALTER TABLE "servers" ADD COLUMN     "runner_health_seq" BIGINT,
ADD COLUMN     "runner_problem" TEXT,
ADD COLUMN     "runner_problem_since" TIMESTAMPTZ(3);
