import { randomUUID } from "node:crypto";
import fc from "fast-check";
import { testPrisma } from "../helpers/db";
import { createAutomationKey, createFixture } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

/**
 * Fuzz of the Automation API through the in-process gateway: ≥ 10,000 requests
 * generated with fast-check from the OpenAPI document's request schemas
 * (boundary lengths and ranges read from the document, wrong types, unicode,
 * missing and extra fields, non-object and malformed bodies, odd headers and
 * paths). The server has no runner, so valid requests end in 409/404 and
 * nothing runs. Every answer must be < 500 with a `{detail: string}` body for
 * errors.
 */
const TOTAL = 10_000;
const CONCURRENCY = 32;
const SEED = Number(process.env.FUZZ_SEED ?? 20261128);

type JsonSchema = { type?: string | string[]; maxLength?: number; minLength?: number; minimum?: number; maximum?: number; properties?: Record<string, JsonSchema> };
type Doc = { paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { $ref: string } }> } }>>; components: { schemas: Record<string, JsonSchema> } };

interface FuzzRequest {
  method: "GET" | "POST";
  path: string;
  body?: string | Uint8Array;
  headers: Record<string, string>;
  /** Which key to use: an index into the keys, or a bad credential. */
  auth: number | "none" | "garbage";
}

describe("fuzz: Automation API", () => {
  const suite = useStack();
  let stack: TestStack;
  let fx: Fixture;
  let tokens: string[];
  let doc: Doc;

  beforeAll(async () => {
    ({ stack } = suite);
    fx = await createFixture();
    // Rate limits are per key and per minute: spread the load so the fuzz reaches validation, not only 429.
    tokens = [];
    for (let i = 0; i < 14; i++) tokens.push((await createAutomationKey(fx.tenant.id, { rateLimit: 1000 })).token);
    doc = (await stack.api().get("/api/automation/v1/openapi.json")).body as Doc;
  });

  it(`answers ${TOTAL} generated requests without a 5xx, every error as {detail}`, async () => {
    const t0 = Date.now();
    const requests = fc.sample(requestArb(doc, fx.server.id), { numRuns: TOTAL, seed: SEED });
    const generatedMs = Date.now() - t0;
    expect(requests.length).toBe(TOTAL);
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    let next = 0;
    let rr = 0;

    const send = async (r: FuzzRequest): Promise<void> => {
      const headers: Record<string, string> = { ...r.headers };
      if (r.auth === "garbage") headers.authorization = "Bearer rca_not-a-real-key";
      else if (r.auth !== "none") headers.authorization = `Bearer ${tokens[rr++ % tokens.length]}`;
      // Node's fetch takes raw bytes; the DOM typings (there for the browser tests) say otherwise.
      const res = await fetch(`${stack.url}${r.path}`, { method: r.method, headers, body: r.body as RequestInit["body"] });
      const text = await res.text();
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
      const where = `${r.method} ${r.path} ${describeBody(r.body)} -> ${res.status} ${text.slice(0, 200)}`;
      if (res.status >= 500) failures.push(`5xx: ${where}`);
      if (res.status >= 400) {
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          failures.push(`not JSON: ${where}`);
          return;
        }
        const ok = typeof body === "object" && body !== null && typeof (body as { detail?: unknown }).detail === "string" && Object.keys(body).length === 1;
        if (!ok) failures.push(`not {detail}: ${where}`);
        if (!/application\/json/.test(res.headers.get("content-type") ?? "")) failures.push(`content-type: ${where}`);
      }
    };

    const worker = async () => {
      while (next < requests.length) {
        const r = requests[next++] as FuzzRequest;
        await send(r).catch((err: unknown) => failures.push(`transport error ${String(err)}: ${r.method} ${r.path}`));
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));

    console.log(`fuzz: generated in ${generatedMs} ms, sent in ${Date.now() - t0 - generatedMs} ms; ${TOTAL} requests, statuses ${JSON.stringify(Object.fromEntries([...statuses].sort(([a], [b]) => a - b)))}`);
    expect(failures.slice(0, 10)).toEqual([]);
    // The generator reaches every layer: auth, parsing, validation, lookups, the runner check.
    for (const s of [400, 401, 404, 409, 422]) expect(statuses.get(s) ?? 0).toBeGreaterThan(0);
    expect([...statuses.values()].reduce((a, b) => a + b, 0)).toBe(TOTAL);
    // Nothing ran: the only server has no runner. Only registry logouts are recorded, ended at once as not run (the
    // spec's form for a failed logout), the rest refused with 409.
    const recorded = await testPrisma().operation.groupBy({ by: ["type", "status", "exitCode", "startedAt"], where: { tenantId: fx.tenant.id }, _count: true });
    expect(recorded.map(({ _count, ...group }) => group)).toEqual(recorded.length ? [{ type: "registry_logout", status: "completed", exitCode: 125, startedAt: null }] : []);
    expect((await stack.api().get("/healthz")).status).toBe(200);
  }, 180_000);
});

function describeBody(body: FuzzRequest["body"]): string {
  if (body === undefined) return "";
  if (typeof body === "string") return body.slice(0, 200);
  return `<${body.length} bytes>`;
}

/** Values that violate a field's schema at its edges, read from the document. */
function fieldMutations(s: JsonSchema): fc.Arbitrary<unknown> {
  const edges: fc.Arbitrary<unknown>[] = [fc.jsonValue({ maxDepth: 2 }), fc.constant(null), fc.constant(""), fc.constant([]), fc.constant({})];
  const types = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes("string")) {
    const max = s.maxLength ?? 300;
    edges.push(
      fc.constant("x".repeat(max)),
      fc.constant("x".repeat(max + 1)),
      fc.constant("é".repeat(max + 1)),
      fc.string({ unit: "grapheme", maxLength: 40 }),
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.constantFrom(" ", "\u0000", "a\u0000b", "\n", "../../etc/passwd", "$(reboot)", "'; DROP TABLE operations; --", "\ud800", "00000000-0000-0000-0000-000000000000", randomUUID()),
      fc.integer(),
      fc.boolean(),
    );
  }
  if (types.includes("integer") || types.includes("number")) {
    const min = s.minimum ?? 0;
    const max = s.maximum ?? 1000;
    edges.push(
      fc.constantFrom(min - 1, max + 1, min, max, 0, -1, 1.5, 1e308, -1e308, Number.MAX_SAFE_INTEGER + 2),
      fc.double(),
      fc.integer(),
      fc.constant(String(min)),
      fc.constant(true),
    );
  }
  if (types.includes("object")) {
    edges.push(
      fc.dictionary(fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 5 }),
      fc.dictionary(fc.string({ unit: "grapheme", maxLength: 10 }), fc.string({ maxLength: 10 }), { maxKeys: 5 }),
      // Too many keys, too many bytes, bad names.
      fc.constant(Object.fromEntries(Array.from({ length: 201 }, (_, i) => [`K${i}`, "v"]))),
      fc.constant({ BIG: "v".repeat(70 * 1024) }),
      fc.constant({ "1BAD": "x", "WITH SPACE": "y" }),
      fc.constant({ nested: { deep: { deeper: [1, 2, 3] } } }),
    );
  }
  return fc.oneof(...edges);
}

function validBody(name: string, serverId: string): Record<string, unknown> {
  const ctx = { provider: "github_actions", repository: "org/app", sha: "abc123", ref: "refs/heads/main" };
  switch (name) {
    case "ExecRequest":
      return { server_id: serverId, command: "echo fuzz", working_directory: "/tmp", env: { A: "1" }, timeout_seconds: 30, run_id: "fuzz", run_context: ctx };
    case "DeployRequest":
      return { application_id: randomUUID(), commit_ref: "main", env_overrides: { FLAG: "1" }, timeout_seconds: 60, run_id: "fuzz", run_context: ctx };
    case "RestartRequest":
      return { server_id: serverId, container_name: "app", timeout_seconds: 30, run_id: "fuzz" };
    case "RebootRequest":
      return { server_id: serverId, run_id: "fuzz", run_context: ctx };
    case "RegistryLoginRequest":
      return { server_id: serverId, credential_id: randomUUID(), run_id: "fuzz" };
    case "RegistryLogoutRequest":
      return { server_id: serverId, registry_url: "ghcr.io", run_id: "fuzz" };
    case "CancelRequest":
      return { reason: "fuzz" };
    default:
      throw new Error(`no valid body for ${name}`);
  }
}

function bodyArb(schema: JsonSchema, valid: Record<string, unknown>): fc.Arbitrary<unknown> {
  const fields = Object.keys(schema.properties ?? {});
  const mutateOne = fc.constantFrom(...fields).chain((f) => fieldMutations(schema.properties?.[f] ?? {}).map((v) => ({ ...valid, [f]: v })));
  const mutateMany = fc
    .array(fc.constantFrom(...fields), { minLength: 2, maxLength: 4 })
    .chain((fs) => fc.tuple(...fs.map((f) => fieldMutations(schema.properties?.[f] ?? {}))).map((vs) => ({ ...valid, ...Object.fromEntries(fs.map((f, i) => [f, vs[i]])) })));
  const drop = fc.subarray(fields, { minLength: 1 }).map((fs) => Object.fromEntries(Object.entries(valid).filter(([k]) => !fs.includes(k))));
  const extra = fc.tuple(fc.string({ unit: "grapheme", maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })).map(([k, v]) => ({ ...valid, [k]: v }));
  return fc.oneof(
    { weight: 1, arbitrary: fc.constant(valid) },
    { weight: 5, arbitrary: mutateOne },
    { weight: 2, arbitrary: mutateMany },
    { weight: 2, arbitrary: drop },
    { weight: 1, arbitrary: extra },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  );
}

/** The body on the wire: JSON mostly, sometimes malformed text or raw bytes. */
function wireArb(body: fc.Arbitrary<unknown>): fc.Arbitrary<string | Uint8Array | undefined> {
  return fc.oneof(
    { weight: 10, arbitrary: body.map((b) => JSON.stringify(b) ?? "null") },
    { weight: 1, arbitrary: body.chain((b) => fc.nat().map((n) => { const s = JSON.stringify(b) ?? ""; return s.slice(0, n % (s.length + 1)); })) },
    { weight: 1, arbitrary: fc.constantFrom("{", "{'a':1}", '{"a":}', "[1,2", "nul", "\u0000", '{"server_id": "x",}', "{\"a\":\"\\ud800\"}", "1e999999", '"just a string"') },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }) },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

const printable = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 300 });

function headersArb(): fc.Arbitrary<Record<string, string>> {
  return fc.record(
    {
      "content-type": fc.oneof(
        { weight: 12, arbitrary: fc.constantFrom("application/json", "application/json; charset=utf-8", "text/plain", "application/x-www-form-urlencoded") },
        { weight: 1, arbitrary: fc.constant("application/json; charset=latin1") },
      ),
      "idempotency-key": fc.oneof(fc.uuid(), printable),
      "last-event-id": printable,
    },
    { requiredKeys: [] },
  );
}

function requestArb(doc: Doc, serverId: string): fc.Arbitrary<FuzzRequest> {
  const posts: fc.Arbitrary<FuzzRequest>[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    const ref = methods.post?.requestBody?.content["application/json"]?.schema.$ref;
    if (!path.startsWith("/api/automation/v1/") || !ref) continue;
    const name = ref.split("/").pop() as string;
    const schema = doc.components.schemas[name] as JsonSchema;
    const pathArb = path.includes("{operation_id}")
      ? fc.oneof(fc.uuid(), fc.constant(randomUUID()), printable.map(encodeURIComponent)).map((id) => path.replace("{operation_id}", id))
      : fc.constant(path);
    posts.push(
      fc.record({
        method: fc.constant("POST" as const),
        path: pathArb,
        body: wireArb(bodyArb(schema, validBody(name, serverId))),
        headers: headersArb(),
        auth: authArb(),
      }),
    );
  }
  const queryArb = fc
    .dictionary(fc.constantFrom("run_id", "server_id", "status", "type", "cursor", "limit", "last_event_id", "x"), fc.oneof(printable, fc.string({ unit: "grapheme", maxLength: 20 }), fc.integer().map(String)), { maxKeys: 4 })
    .map((q) => Object.entries(q).map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&"));
  const gets = fc.record({
    method: fc.constant("GET" as const),
    path: fc.oneof(
      queryArb.map((q) => `/api/automation/v1/operations?${q}`),
      fc.oneof(fc.uuid(), printable.map(encodeURIComponent)).map((id) => `/api/automation/v1/operations/${id}`),
      fc.tuple(fc.uuid(), queryArb).map(([id, q]) => `/api/automation/v1/operations/${id}/logs?${q}`),
    ),
    headers: headersArb(),
    auth: authArb(),
  });
  return fc.oneof({ weight: 6, arbitrary: fc.oneof(...posts) }, { weight: 1, arbitrary: gets });
}

function authArb(): fc.Arbitrary<FuzzRequest["auth"]> {
  return fc.oneof({ weight: 18, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.constant("none" as const) }, { weight: 1, arbitrary: fc.constant("garbage" as const) });
}
