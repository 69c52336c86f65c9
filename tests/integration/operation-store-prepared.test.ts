import { randomBytes, randomUUID } from "node:crypto";
import { Pool } from "pg";
import { createDb, type Db } from "@runbridge/db";
import { testDatabaseUrl } from "../helpers/env";

/**
 * The hot-path statements are prepared once per connection. A migration that
 * adds a column while the services run must not break them: a prepared
 * `SELECT *` fails with "cached plan must not change result type", which is
 * why they name their columns. Run against copies of the tables in a private
 * schema, so the shared test schema is never altered.
 */
describe("operation store: prepared statements across a migration", () => {
  const schema = `prep_${randomBytes(4).toString("hex")}`;
  let admin: Pool;
  let db: Db;
  let url: string;

  beforeAll(async () => {
    admin = new Pool({ connectionString: testDatabaseUrl(), max: 1 });
    await admin.query(`CREATE SCHEMA ${schema}`);
    for (const table of ["tenants", "servers", "operations", "audit_events", "deployments"]) {
      await admin.query(`CREATE TABLE ${schema}.${table} (LIKE public.${table} INCLUDING ALL)`);
    }
    const u = new URL(testDatabaseUrl());
    u.searchParams.set("options", `-c search_path=${schema}`);
    url = u.toString();
    // One connection, so every call below reuses the statements it prepared.
    db = createDb(url, { max: 1 });
  });

  afterAll(async () => {
    await db.close();
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  });

  it("keeps working after a column is added, where a prepared SELECT * breaks", async () => {
    const tenantId = (await admin.query<{ id: string }>(`INSERT INTO ${schema}.tenants (id, name) VALUES (gen_random_uuid(), 't') RETURNING id`)).rows[0]!.id;
    const serverId = (
      await admin.query<{ id: string }>(`INSERT INTO ${schema}.servers (id, tenant_id, name, runner_token_hash) VALUES (gen_random_uuid(), $1, 's', $2) RETURNING id`, [
        tenantId,
        randomBytes(16).toString("hex"),
      ])
    ).rows[0]!.id;
    const insert = () =>
      db.operations.insertWithAudit({
        id: randomUUID(),
        tenantId,
        serverId,
        automationKeyId: null,
        type: "exec",
        command: "true",
        params: {},
        workingDirectory: null,
        timeoutSeconds: 30,
        envKeys: [],
        runId: null,
        runContext: null,
        clientIp: null,
        deliverWithinSeconds: 60,
        redisPrefix: "test-fixture-no-dispatcher",
        audit: {},
      });
    const roundTrip = async () => {
      const op = await insert();
      expect(await db.operations.findServerForTenant(serverId, tenantId)).toMatchObject({ id: serverId });
      expect(await db.operations.claimForDispatch(op.id)).toMatchObject({ id: op.id, status: "running" });
      expect(await db.operations.findForTenant(op.id, tenantId)).toMatchObject({ id: op.id, server: { name: "s" } });
      expect(await db.operations.finish(serverId, { operationId: op.id, status: "completed", exitCode: 0 })).toMatchObject({ status: "completed", exitCode: 0 });
      expect(await db.operations.findById(op.id)).toMatchObject({ status: "completed" });
      // The other finish: only while never handed to a runner (a cancel before dispatch, a delivery deadline).
      const undispatched = await insert();
      expect(await db.operations.finish(serverId, { operationId: undispatched.id, status: "cancelled" }, "undispatched")).toMatchObject({ status: "cancelled" });
      // A step recorded on the row with its audit event (a reboot's path): alone, then again with the finish (its event stays single).
      const noted = await insert();
      const note = { params: { step: "one" }, event: { type: "operation.step", data: { n: 1 } } };
      expect(await db.operations.noteRebootPath(noted.id, note, false)).toBe(true);
      expect(await db.operations.finish(serverId, { operationId: noted.id, status: "completed" }, "running", note)).toMatchObject({ status: "completed", params: { step: "one" } });
      const events = await admin.query(`SELECT type FROM ${schema}.audit_events WHERE operation_id = $1 ORDER BY type`, [noted.id]);
      expect(events.rows.map((r: { type: string }) => r.type)).toEqual(["operation.created", "operation.finished", "operation.step"]);
    };
    // The control: a named SELECT * on the same pool, prepared before the migration.
    const pool = new Pool({ connectionString: url, max: 1 });
    const star = () => pool.query({ name: "test.star", text: "SELECT * FROM operations LIMIT 1" });
    try {
      await roundTrip();
      await star();
      await admin.query(`ALTER TABLE ${schema}.operations ADD COLUMN added_later integer`);
      await admin.query(`ALTER TABLE ${schema}.servers ADD COLUMN added_later integer`);
      await expect(star()).rejects.toThrow("cached plan must not change result type");
      await roundTrip();
    } finally {
      await pool.end();
    }
  });
});
