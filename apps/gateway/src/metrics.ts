import type { IncomingMessage } from "node:http";
import type { ErrorRequestHandler, RequestHandler, Router } from "express";
import { Counter, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { registerDbPoolGauge, type PoolStatsSource } from "@runbridge/db";
import { OperationsFinishedMetric, finishedLabels, type Ending } from "@runbridge/contracts";
import { routeMatcher, routesOf, type RouteMatcher } from "./route-matcher";
import { automationRouteTemplate } from "./routes/automation/paths";

/**
 * The gateway's Prometheus metrics. One registry per process (not prom-client's
 * global one), so nothing else that loads prom-client can collide with it.
 * Labels are bounded: route templates, never raw paths (which carry ids), and
 * never anything from a request body.
 */
export const gatewayRegistry = new Registry();
gatewayRegistry.setDefaultLabels({ service: "gateway" });
collectDefaultMetrics({ register: gatewayRegistry, prefix: "runbridge_gateway_" });

const httpRequests = new Counter({
  name: "runbridge_gateway_http_requests_total",
  help: "HTTP requests answered, by method, route template and status code",
  labelNames: ["method", "route", "status"] as const,
  registers: [gatewayRegistry],
});

const httpDuration = new Histogram({
  name: "runbridge_gateway_http_request_duration_seconds",
  help: "Time to answer an HTTP request (held exec requests included), by method, route template and status code",
  labelNames: ["method", "route", "status"] as const,
  // Up to EXEC_MAX_WAIT_SECONDS' ceiling: synchronous requests are held while the command runs.
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900],
  registers: [gatewayRegistry],
});

const operationsAccepted = new Counter({
  name: "runbridge_gateway_operations_accepted_total",
  help: "Operations accepted and queued for delivery, by operation type",
  labelNames: ["type"] as const,
  registers: [gatewayRegistry],
});

let dbPool: PoolStatsSource | undefined;
registerDbPoolGauge(gatewayRegistry, "gateway", () => dbPool);

/** The pool the gateway's db pool gauge reads (set as the context is built). */
export function observeDbPool(source: PoolStatsSource): void {
  dbPool = source;
}

export function countOperationAccepted(type: string): void {
  operationsAccepted.inc({ type });
}

/**
 * The dispatchers' series, for the operations a gateway ends itself: cancelled
 * before any dispatcher took them, or failed because they could not be queued
 * (or their deployment recorded). `service` tells the two apart.
 */
const operationsFinished = new Counter({ ...OperationsFinishedMetric, registers: [gatewayRegistry] });

export function countOperationFinished(ending: Ending, recordedStatus: string, type: string): void {
  operationsFinished.inc(finishedLabels(ending, recordedStatus, type));
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

type RoutedRequest = IncomingMessage & { route?: { path?: unknown }; baseUrl?: string };

/** Templates noted while Express was still inside the router of the route that failed (see noteFailedRoute). */
const failedRoutes = new WeakMap<IncomingMessage, string>();

/**
 * The template of the route Express matched, in full (e.g. /api/automation/v1/operations/:operationId),
 * or undefined. The mount point is spelled as registered: Express matches it case-insensitively
 * and leaves it in req.baseUrl as the request spelled it (/API/Automation/V1), which would make
 * one series per spelling. Every mount point is a lower-case literal (app.ts).
 */
function matchedTemplate(req: IncomingMessage): string | undefined {
  const { route, baseUrl } = req as RoutedRequest;
  if (!route || typeof route.path !== "string") return undefined;
  return `${(baseUrl ?? "").toLowerCase()}${route.path}` || "/";
}

/**
 * Error middleware for the end of a router mounted at a path: notes the template of the route
 * that failed while req.baseUrl still holds the mount point. The app's error middleware answers
 * after Express has left the router and put req.baseUrl back, so a route's errors (its 404, 409,
 * 422…) would otherwise be counted under its path without the mount ("/exec", and "/operations"
 * for both the Automation and the Management API's list).
 */
export function noteFailedRoute(): ErrorRequestHandler {
  return (err: unknown, req, _res, next) => {
    const template = matchedTemplate(req);
    if (template && !failedRoutes.has(req)) failedRoutes.set(req, template);
    next(err);
  };
}

/** The route table of the router a request entered, noted by expectedRouteNoter. */
const expectedRoutes = new WeakMap<IncomingMessage, RouteMatcher>();

/**
 * For a router mounted at `base`: `middleware` goes first in it and notes its route table on each
 * request, so that answers given before the router reaches a route — the management API's
 * authentication refusals — are counted under the route they were for instead of as unmatched (the
 * table is only consulted for such answers); `learn()` reads the router's routes once they are all
 * added (at startup: a template it cannot translate fails the boot, not a request).
 */
export function expectedRouteNoter(base: string): { middleware: RequestHandler; learn: (router: Router) => void } {
  let match: RouteMatcher = () => undefined;
  return {
    middleware: (req, _res, next) => {
      expectedRoutes.set(req, match);
      next();
    },
    learn: (router) => {
      match = routeMatcher(routesOf(router).map(([method, path]) => [method, `${base}${path}`] as const));
    },
  };
}

/**
 * The template of the route that answered, from what Express left on the request; for an
 * Automation API request answered before Express routed it (a refusal at the front door or at
 * the key-wide checks, a malformed body, an idempotent replay), the template of the route it was
 * for, so refusals can be counted per route. Requests no route serves share one label, so
 * scanners cannot blow up the series count.
 */
function routeTemplate(req: IncomingMessage, path: string): string {
  const method = req.method ?? "";
  return failedRoutes.get(req) ?? matchedTemplate(req) ?? expectedRoutes.get(req)?.(method, path) ?? automationRouteTemplate(method, path) ?? "unmatched";
}

/** Counts an answered request and the time it took; `path` as it arrived, before Express rewrote req.url. */
export function observeHttpAnswer(req: IncomingMessage, path: string, status: number, seconds: number): void {
  const method = req.method ?? "";
  const labels = { method: KNOWN_METHODS.has(method) ? method : "OTHER", route: routeTemplate(req, path), status: String(status) };
  httpRequests.inc(labels);
  httpDuration.observe(labels, seconds);
}
