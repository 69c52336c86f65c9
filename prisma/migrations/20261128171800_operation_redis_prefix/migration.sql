-- AlterTable
ALTER TABLE "operations" ADD COLUMN     "redis_prefix" TEXT;

