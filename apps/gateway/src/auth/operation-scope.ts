import type { RequestHandler } from "express";
import { OPERATION_ROUTES } from "../routes/automation/paths";
import { automationAuth } from "./locals";
import { assertOperationAllowed } from "./scopes";

/**
 * The operation scope of a request that starts an operation, checked before
 * its body is parsed and its Idempotency-Key read: the spec's 403 for an
 * operation outside the key's scope comes before any 400/422 about the body.
 * Matched as Express matches routes (case-insensitive, optional trailing
 * slash); the routes check again, for the paths this does not recognise.
 */
export function operationScopeMiddleware(): RequestHandler {
  return (req, res, next) => {
    if (req.method === "POST") {
      const op = OPERATION_ROUTES[req.path.toLowerCase().replace(/(.)\/$/, "$1")];
      if (op) assertOperationAllowed(automationAuth(res).key, op);
    }
    next();
  };
}
