import Joi from "joi";
import parse from "joi-to-json";
import { MAX_CHARS_DESCRIPTION } from "@runbridge/contracts";

/** A JSON Schema (2020-12, as OpenAPI 3.1 uses it) object. */
export type JsonSchema = Record<string, unknown>;

interface Description {
  type?: string;
  flags?: { empty?: { allow?: unknown[] } };
  keys?: Record<string, Description>;
  patterns?: { schema?: Description; regex?: string; rule: Description }[];
  rules?: { name: string; args?: Record<string, unknown> }[];
  items?: Description[];
}

/**
 * Joi → JSON Schema through joi-to-json, then what it leaves out of our
 * contracts filled in from Joi's own description, so the document states the
 * same rules the gateway enforces: `.pattern()` objects (env names and values,
 * extra run_context fields) become propertyNames/additionalProperties instead
 * of "no properties allowed"; several string patterns all apply (allOf);
 * object key-count limits become min/maxProperties; maxChars() limits maxLength.
 */
export function joiToJsonSchema(schema: Joi.Schema): JsonSchema {
  const json = parse(schema, "open-api-3.1") as JsonSchema;
  complete(schema.describe() as Description, json);
  return json;
}

function complete(desc: Description, json: JsonSchema): void {
  // `.empty(null)`: null is taken as the field not sent (its default applies).
  if (desc.flags?.empty?.allow?.includes(null)) allowNull(json);
  if (desc.type === "object") {
    const props = (json.properties ?? {}) as Record<string, JsonSchema>;
    for (const [k, d] of Object.entries(desc.keys ?? {})) {
      const p = props[k];
      if (p) complete(d, p);
    }
    const pattern = desc.patterns?.[0];
    if (pattern) {
      json.additionalProperties = joiToJsonSchema(Joi.build(pattern.rule));
      if (pattern.schema) json.propertyNames = joiToJsonSchema(Joi.build(pattern.schema));
      else if (pattern.regex) json.propertyNames = { pattern: regexSource(pattern.regex) };
    }
    for (const r of desc.rules ?? []) {
      if (r.name === "max" && typeof r.args?.limit === "number") json.maxProperties = r.args.limit;
      if (r.name === "min" && typeof r.args?.limit === "number") json.minProperties = r.args.limit;
    }
  }
  if (desc.type === "string") {
    // maxChars(): a length limit joi-to-json cannot see (a custom rule), counted as maxLength counts.
    for (const r of desc.rules ?? []) {
      const d = r.name === "custom" ? r.args?.description : undefined;
      if (typeof d === "string" && d.startsWith(MAX_CHARS_DESCRIPTION)) json.maxLength = Number(d.slice(MAX_CHARS_DESCRIPTION.length));
    }
    const patterns = (desc.rules ?? []).filter((r) => r.name === "pattern" && typeof r.args?.regex === "string").map((r) => regexSource(r.args?.regex as string));
    if (patterns.length > 1) {
      delete json.pattern;
      json.allOf = patterns.map((p) => ({ pattern: p }));
    }
  }
  if (desc.type === "array" && desc.items?.[0] && json.items && typeof json.items === "object") complete(desc.items[0], json.items as JsonSchema);
}

function allowNull(json: JsonSchema): void {
  if (typeof json.type === "string") json.type = [json.type, "null"];
  else if (Array.isArray(json.anyOf) || Array.isArray(json.oneOf)) {
    const key = Array.isArray(json.anyOf) ? "anyOf" : "oneOf";
    json[key] = [...(json[key] as JsonSchema[]), { type: "null" }];
  }
}

/** "/^a$/i" → "^a$" (JSON Schema patterns carry no flags; ours use none). */
function regexSource(literal: string): string {
  const m = /^\/(.*)\/[a-z]*$/s.exec(literal);
  return m?.[1] ?? literal;
}

/** Query parameters of a Joi object schema, each with its own JSON Schema. */
export function joiToQueryParameters(schema: Joi.ObjectSchema): Record<string, unknown>[] {
  const json = joiToJsonSchema(schema);
  const required = new Set((json.required as string[] | undefined) ?? []);
  return Object.entries((json.properties ?? {}) as Record<string, JsonSchema>).map(([name, s]) => ({
    name,
    in: "query",
    required: required.has(name),
    schema: s,
  }));
}
