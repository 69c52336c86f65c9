-- AlterTable
ALTER TABLE "applications" ADD COLUMN     "allowed_env_overrides" JSONB;

