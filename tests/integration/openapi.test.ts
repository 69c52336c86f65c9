import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import request from "supertest";
import { Limits, OPERATION_TYPES } from "@runbridge/contracts";
import { createApp } from "../../apps/gateway/src/app";
import type { GatewayContext } from "../../apps/gateway/src/context";
import { routesOf } from "../../apps/gateway/src/route-matcher";
import { AUTOMATION_BASE, OPENAPI_PATH } from "../../apps/gateway/src/routes/automation/paths";
import { ROOT } from "../helpers/processes";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { parameters?: { name: string; in: string }[]; requestBody?: unknown; security?: unknown[] }>>;
  components: { schemas: Record<string, Record<string, unknown>> };
};

/**
 * The validator is ESM-only; it runs in a child Node process (as it would in
 * CI tooling) and reports {valid, errors} for the document given on stdin.
 */
function validateOpenApi(doc: unknown): { valid: boolean; errors?: unknown; version?: string } {
  const script = `
    import { Validator } from "@seriousme/openapi-schema-validator";
    let input = "";
    for await (const chunk of process.stdin) input += chunk;
    const v = new Validator();
    const res = await v.validate(JSON.parse(input));
    process.stdout.write(JSON.stringify({ valid: res.valid, errors: res.errors, version: v.version }));
  `;
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], { cwd: ROOT, input: JSON.stringify(doc) });
  return JSON.parse(out.toString()) as { valid: boolean; errors?: unknown; version?: string };
}

type ExpressRouter = Parameters<typeof routesOf>[0];

interface MountLayer {
  /** Mounted at the root: routesOf already reads it. */
  slash?: boolean;
  /** The path a router was mounted at (router 2's Layer). */
  rawPath?: unknown;
  handle?: { stack?: unknown };
}

/**
 * The routes of the routers mounted at a path (`app.use("/api/v1", management)`), with that path:
 * routesOf reads only a router and those mounted at its root, which is all the metrics need.
 */
function mountedRoutes(router: ExpressRouter, base = ""): [string, string][] {
  const out: [string, string][] = [];
  for (const layer of (router as unknown as { stack: MountLayer[] }).stack) {
    if (!Array.isArray(layer.handle?.stack)) continue;
    const inner = layer.handle as unknown as ExpressRouter;
    if (layer.slash) {
      out.push(...mountedRoutes(inner, base));
      continue;
    }
    // Fails loudly rather than skipping a whole API if a router upgrade stores the mount elsewhere.
    if (typeof layer.rawPath !== "string") throw new Error(`a router mounted under "${base || "/"}" has no string mount path (rawPath): update mountedRoutes`);
    const mount = `${base}${layer.rawPath}`;
    out.push(...routesOf(inner).map(([method, path]): [string, string] => [method, `${mount}${path}`]), ...mountedRoutes(inner, mount));
  }
  return out;
}

/**
 * Every [method, path] the gateway's Express app serves. The stack does not expose that app
 * (createApp wraps it in the front door), so a second one is assembled by the same createApp on
 * the stack's context, and taken from the one request it answers: Express puts itself on every
 * request it handles as `req.app`.
 */
async function servedRoutes(ctx: GatewayContext): Promise<[string, string][]> {
  const listener = createApp(ctx);
  let seen: IncomingMessage | undefined;
  await request((req: IncomingMessage, res: ServerResponse) => {
    seen = req;
    listener(req, res);
  })
    .get(OPENAPI_PATH)
    .expect(200);
  const router = (seen as { app?: { router?: ExpressRouter } } | undefined)?.app?.router;
  if (!router) throw new Error("the request did not go through Express: no req.app.router");
  return [...routesOf(router), ...mountedRoutes(router)];
}

/** A route's method and path with its parameters unnamed: Express's `:id` and OpenAPI's `{id}` alike. */
const routeKey = (method: string, path: string) => `${method.toUpperCase()} ${path.replace(/:\w+|\{[^}]+\}/g, "{}")}`;

describe("GET /api/automation/v1/openapi.json", () => {
  const suite = useStack();
  let stack: TestStack;
  let doc: Doc;

  beforeAll(async () => {
    ({ stack } = suite);
    const res = await stack.api().get("/api/automation/v1/openapi.json");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/application\/json/);
    doc = res.body as Doc;
  });

  it("is a valid OpenAPI 3.1 document, served without a key", () => {
    expect(doc.openapi).toBe("3.1.0");
    const result = validateOpenApi(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(result.version).toBe("3.1");
  });

  it("fails validation for a broken document (the check has teeth)", () => {
    const broken = JSON.parse(JSON.stringify(doc)) as Doc & { info?: unknown };
    delete broken.info;
    expect(validateOpenApi(broken).valid).toBe(false);
  });

  it("describes every Automation API endpoint, with Idempotency-Key on each POST", () => {
    const base = "/api/automation/v1";
    const posts = ["/exec", "/deploy", "/restart", "/reboot", "/registry-auth/login", "/registry-auth/logout", "/operations/{operation_id}/cancel"];
    for (const p of posts) {
      const op = doc.paths[`${base}${p}`]?.post;
      expect(op).toBeDefined();
      expect(op?.parameters?.some((x) => x.name === "Idempotency-Key" && x.in === "header")).toBe(true);
    }
    for (const p of ["/operations", "/operations/{operation_id}", "/operations/{operation_id}/logs", "/openapi.json"]) expect(doc.paths[`${base}${p}`]?.get).toBeDefined();
    for (const p of ["/servers", "/servers/{id}", "/servers/{id}/runner-token", "/automation-keys", "/automation-keys/{id}", "/operations", "/applications", "/applications/{id}", "/registry-credentials", "/audit-events"]) expect(doc.paths[`/api/v1${p}`]).toBeDefined();
  });

  it("states the same limits the gateway enforces (generated from the Joi contracts)", () => {
    const exec = doc.components.schemas.ExecRequest as { required: string[]; additionalProperties: boolean; properties: Record<string, Record<string, unknown>> };
    expect(exec.required.sort()).toEqual(["command", "server_id"]);
    expect(exec.additionalProperties).toBe(false);
    expect(exec.properties.command).toMatchObject({ type: "string", maxLength: Limits.commandMaxChars });
    // Optional fields take null as "not sent".
    expect(exec.properties.timeout_seconds).toMatchObject({ type: ["integer", "null"], minimum: 1, maximum: 900, default: 60 });
    expect(exec.properties.working_directory).toMatchObject({ type: ["string", "null"] });
    expect(exec.properties.env).toMatchObject({
      type: ["object", "null"],
      maxProperties: Limits.envMaxKeys,
      additionalProperties: { type: "string" },
      propertyNames: { pattern: "^[A-Za-z_][A-Za-z0-9_]*$" },
    });
    // A CI run id as a string, or as the number a template writes unquoted.
    expect(exec.properties.run_id).toEqual({
      anyOf: [
        { type: "string", minLength: 1, maxLength: Limits.runIdMaxChars },
        { type: "integer", minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
        { type: "null" },
      ],
    });
    expect(doc.components.schemas.OperationStatus).toMatchObject({ enum: ["running", "completed", "failed", "timeout", "cancelled"] });
    const keyReq = doc.components.schemas.CreateAutomationKeyRequest as { properties: Record<string, { items?: { enum?: string[] }; maximum?: number }> };
    expect(keyReq.properties.allowed_operations?.items?.enum).toEqual(OPERATION_TYPES);
    expect(keyReq.properties.rate_limit?.maximum).toBe(Limits.rateLimitMax);
    // An application's allowed_env_overrides: names or PREFIX* patterns, or null for the default rules.
    for (const schema of ["CreateApplicationRequest", "UpdateApplicationRequest", "Application"]) {
      const props = (doc.components.schemas[schema] as { properties: Record<string, unknown> }).properties;
      expect([schema, props.allowed_env_overrides]).toEqual([schema, expect.objectContaining({ type: ["array", "null"], items: expect.objectContaining({ type: "string" }) })]);
    }
    const allowReq = doc.components.schemas.CreateApplicationRequest as { properties: Record<string, { items?: { pattern?: string }; maxItems?: number }> };
    expect(allowReq.properties.allowed_env_overrides).toMatchObject({ maxItems: Limits.envMaxKeys, items: { pattern: "^[A-Za-z_][A-Za-z0-9_]*\\*?$" } });
  });

  it("documents only routes the gateway serves", async () => {
    for (const [p, methods] of Object.entries(doc.paths)) {
      const url = p.replace(/\{[^}]+\}/g, randomUUID());
      for (const method of Object.keys(methods)) {
        const res = await (stack.api() as unknown as Record<string, (u: string) => Promise<{ status: number; body: { detail?: string } }>>)[method]?.(url);
        expect(res).toBeDefined();
        // Without a key a served route answers 401 (or 200 for public ones), never "No route".
        expect(`${method.toUpperCase()} ${p} ${res?.status} ${res?.body?.detail ?? ""}`).not.toMatch(/No route/);
        expect([200, 401]).toContain(res?.status);
      }
    }
  });

  it("documents every route the gateway serves under /api/, with its method", async () => {
    const documented = new Set(Object.entries(doc.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => routeKey(method, path))));
    const served = [...new Set((await servedRoutes(stack.gateway)).filter(([, path]) => path.startsWith("/api/")).map(([method, path]) => routeKey(method, path)))].sort();
    // Both APIs were found: a walk that lost a mount would otherwise have nothing to miss.
    expect(served).toEqual(expect.arrayContaining([`POST ${AUTOMATION_BASE}/exec`, `GET ${AUTOMATION_BASE}/operations/{}`, "GET /api/v1/servers", "DELETE /api/v1/servers/{}"]));
    expect(served.filter((route) => !documented.has(route))).toEqual([]);
  });
});
