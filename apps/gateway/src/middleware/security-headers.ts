import type { RequestHandler } from "express";
import helmet from "helmet";

/** Only over TLS (directly or through a trusted proxy): on plain HTTP it means nothing and would only mislead. */
const hsts = helmet.strictTransportSecurity({ maxAge: 365 * 24 * 60 * 60, includeSubDomains: false });
const overTlsOnly: RequestHandler = (req, res, next) => (req.secure ? hsts(req, res, next) : next());

/**
 * Every answer of the API is JSON for programs: never rendered as a page, framed, sniffed into
 * another type, or kept by a cache (operation output and audit events are in them). Routes that
 * may be cached (the dashboard's static files) set their own Cache-Control.
 */
export const apiSecurityHeaders: RequestHandler[] = [
  helmet({
    contentSecurityPolicy: { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } },
    xFrameOptions: { action: "deny" },
    strictTransportSecurity: false,
  }),
  overTlsOnly,
  (_req, res, next) => {
    res.setHeader("Cache-Control", "no-store");
    next();
  },
];

/** The dashboard's pages are static and same-origin only: a strict CSP of their own and no framing. */
const dashboardCsp = helmet.contentSecurityPolicy({
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    scriptSrc: ["'self'"],
    styleSrc: ["'self'"],
    imgSrc: ["'self'", "data:"],
    connectSrc: ["'self'"],
    fontSrc: ["'self'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
    formAction: ["'self'"],
    objectSrc: ["'none'"],
  },
});

/** The dashboard's static files: its policy, and the caching express.static gives them (it keeps a Cache-Control already set). */
export const dashboardSecurityHeaders: RequestHandler = (req, res, next) => {
  res.removeHeader("Cache-Control");
  dashboardCsp(req, res, next);
};
