import { Router } from "express";
import { buildOpenApiDocument } from "../../openapi/document";
import { OPENAPI_PATH } from "./paths";

/** GET /api/automation/v1/openapi.json: public (no key), built once per process. */
export function openApiRouter(): Router {
  const router = Router();
  let body: string | null = null;
  router.get(OPENAPI_PATH, (_req, res) => {
    body ??= JSON.stringify(buildOpenApiDocument());
    res.type("application/json").set("Cache-Control", "public, max-age=300").send(body);
  });
  return router;
}
