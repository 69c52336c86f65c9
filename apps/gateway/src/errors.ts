/**
 * Domain errors carry their HTTP status; the error middleware turns them into
 * `{ "detail": message }`. Anything else is a 500 with a logged error id.
 */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = new.target.name;
  }
}

export class BadRequestError extends HttpError {
  constructor(message: string) {
    super(400, message);
  }
}
export class UnauthorizedError extends HttpError {
  constructor(message = "Invalid API key") {
    super(401, message, { "WWW-Authenticate": 'Bearer realm="runbridge"' });
  }
}
export class ForbiddenError extends HttpError {
  constructor(message: string) {
    super(403, message);
  }
}
export class NotFoundError extends HttpError {
  constructor(message: string) {
    super(404, message);
  }
}
export class ConflictError extends HttpError {
  constructor(message: string) {
    super(409, message);
  }
}
export class ValidationError extends HttpError {
  constructor(message: string) {
    super(422, message);
  }
}
export class RateLimitedError extends HttpError {
  constructor(message: string, retryAfterSeconds: number) {
    super(429, message, { "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))) });
  }
}
export class ServiceUnavailableError extends HttpError {
  constructor(message: string, retryAfterSeconds = 5) {
    super(503, message, { "Retry-After": String(retryAfterSeconds) });
  }
}
