/**
 * Domain errors carry their HTTP status; the error middleware turns them into
 * `{ "detail": message }`. Anything else is a 500 with a logged error id.
 */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    // Without a stack trace: it is an answer to the client, never logged with one, and refusals come in
    // floods — without the capture the gateway answered a fifth to a third more 401s/429s (docs/benchmarks.md).
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(message);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.status = status;
    this.headers = headers;
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
/** A request outside its automation key's scope: which scope refused it goes to the audit trail. */
export class ScopeError extends ForbiddenError {
  constructor(
    readonly scope: "operation" | "server" | "credential",
    message: string,
  ) {
    super(message);
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

/**
 * A 500 whose operation may exist and run (its insert went unconfirmed and could not be settled): the
 * answer an Idempotency-Key keeps, like an accepted one, so that a retry with the key gets this answer
 * again instead of starting the operation a second time (every other error answer releases the key).
 */
export class OutcomeUnknownError extends HttpError {
  constructor(message: string) {
    super(500, message);
  }
}

/** An operation recorded but ended as failed before it could be queued: 503 unless the route answers with the operation. */
export class OperationNotStartedError extends ServiceUnavailableError {
  constructor(
    readonly operationId: string,
    message: string,
  ) {
    super(message);
  }
}
