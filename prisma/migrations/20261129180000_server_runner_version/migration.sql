-- AlterTable: the software version the server's runner reported when it last connected (NULL: none yet, or a runner too old to say).
ALTER TABLE "servers" ADD COLUMN     "runner_version" VARCHAR(40);
