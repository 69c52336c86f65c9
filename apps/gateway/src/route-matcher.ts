import type { Router } from "express";

/**
 * A route's full path as a pattern matching what Express matches it with
 * (router 2, path-to-regexp 8): case-insensitively, with at most one trailing
 * slash, a parameter standing for one or more characters of one segment.
 * Only literal segments and parameters are used here, so nothing else needs
 * translating.
 */
function routePattern(template: string): RegExp {
  if (!/^(\/([\w.-]+|:\w+))+$/.test(template)) throw new Error(`route ${template}: only literal segments and :parameters are supported`);
  return new RegExp(`^${template.replace(/\./g, "\\.").replace(/:\w+/g, "[^/]+")}/?$`, "i");
}

/**
 * Finds which of `routes` (method, full path template) a request is for, from its method and path alone, as
 * Express would route it (HEAD by GET routes, an absolute-form target by its path); undefined when none is.
 * Throws at once on a template it cannot translate, so that it is built at startup, not per request.
 */
export type RouteMatcher = (method: string, path: string) => string | undefined;

export function routeMatcher(routes: readonly (readonly [string, string])[]): RouteMatcher {
  const patterns = routes.map(([method, template]) => ({ method: method.toUpperCase(), template, pattern: routePattern(template) }));
  return (method, path) => {
    const m = method === "HEAD" ? "GET" : method;
    const p = path.startsWith("/") ? path : path.replace(/^[^/]*:\/\/[^/]*/, "");
    return patterns.find((r) => r.method === m && r.pattern.test(p))?.template;
  };
}

interface StackLayer {
  route?: { path: unknown; methods: Record<string, boolean | undefined> };
  handle?: { stack?: StackLayer[] };
  /** Mounted at the router's root ("/"), as `router.use(subRouter)` does. */
  slash?: boolean;
}

/**
 * The [method, path] of every route a router serves: its own, and those of
 * the routers mounted at its root — read from the router's stack, the list
 * Express itself matches against.
 */
export function routesOf(router: Router): [string, string][] {
  const out: [string, string][] = [];
  for (const layer of (router as unknown as { stack: StackLayer[] }).stack) {
    if (layer.route && typeof layer.route.path === "string") {
      for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== "_all") out.push([method.toUpperCase(), layer.route.path]);
    } else if (layer.slash && layer.handle?.stack) {
      out.push(...routesOf(layer.handle as unknown as Router));
    }
  }
  return out;
}
