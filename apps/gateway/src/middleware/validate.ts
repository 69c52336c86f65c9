import type Joi from "joi";
import { VALIDATION_OPTIONS, reservedKeyPath, unstorableText } from "@runbridge/contracts";
import { ValidationError } from "../errors";

/** Validates a request body with its contract schema; the 422 detail names the bad field. */
export function validateBody<T>(schema: Joi.ObjectSchema<T>, body: unknown): T {
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new ValidationError("Request body must be a JSON object");
  }
  const reserved = reservedKeyPath(body);
  if (reserved) throw new ValidationError(`"${reserved}": a key named __proto__ cannot be passed (a JavaScript object cannot hold it); rename it`);
  return storable(schema.validate(body, VALIDATION_OPTIONS));
}

export function validateQuery<T>(schema: Joi.ObjectSchema<T>, query: unknown): T {
  return storable(schema.validate(query ?? {}, { ...VALIDATION_OPTIONS, convert: true }));
}

/** A validated value, refused if PostgreSQL could not take its text (it gave a 500 at the insert or the query). */
function storable<T>({ value, error }: Joi.ValidationResult<T>): T {
  if (error) throw new ValidationError(error.details[0]?.message ?? error.message);
  const unstorable = unstorableText(value);
  if (unstorable) throw new ValidationError(unstorable);
  return value;
}

export function validateParam<T>(schema: Joi.Schema<T>, raw: unknown, notFound: () => Error): T {
  const { value, error } = schema.validate(raw);
  // A malformed id cannot name an existing resource: answer as for a missing one.
  if (error) throw notFound();
  return value;
}
