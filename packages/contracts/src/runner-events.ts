import Joi from "joi";
import { TERMINAL_STATUSES } from "./operations";
import { uuid } from "./schemas/common";
import type { OperationResult, OutputChunk } from "./socket";

/**
 * What a runner sends, checked before a dispatcher acts on it: a runner token
 * is all it takes to send anything, and a malformed event must not be able to
 * throw inside a dispatcher (one bad runner would otherwise crash every
 * dispatcher it reaches, one after another). Unknown fields are let through,
 * so a newer runner can add some.
 */
const operationId = uuid().required();
const isoTime = Joi.string().isoDate().required();

export const runnerEventSchemas = {
  "operation:started": Joi.object<{ operationId: string; startedAt: string }>({ operationId, startedAt: isoTime })
    .unknown(true)
    .required(),
  "operation:output": Joi.object<OutputChunk>({
    operationId,
    stream: Joi.string().valid("stdout", "stderr").required(),
    offset: Joi.number().integer().min(0).required(),
    data: Joi.string().allow("").required(),
  })
    .unknown(true)
    .required(),
  "operation:result": Joi.object<OperationResult>({
    operationId,
    status: Joi.string()
      .valid(...TERMINAL_STATUSES)
      .required(),
    exitCode: Joi.number().integer().allow(null).required(),
    stdout: Joi.string().allow("").required(),
    stderr: Joi.string().allow("").required(),
    stdoutTruncated: Joi.boolean().required(),
    stderrTruncated: Joi.boolean().required(),
    durationMs: Joi.number().integer().min(0).required(),
    startedAt: isoTime,
    error: Joi.string().allow(""),
  })
    .unknown(true)
    .required(),
} as const;
