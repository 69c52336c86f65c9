import Joi from "joi";
import { TERMINAL_STATUSES } from "./operations";
import { uuid } from "./schemas/common";
import { RUNNER_PROBLEM_MAX_CHARS, type OperationResult, type OutputChunk, type RunnerHealth } from "./socket";

/**
 * What a runner sends, checked before a dispatcher acts on it: a runner token
 * is all it takes to send anything, and a malformed event must not be able to
 * throw inside a dispatcher (one bad runner would otherwise crash every
 * dispatcher it reaches, one after another). Unknown fields are let through,
 * so a newer runner can add some.
 */
const operationId = uuid().required();
const isoTime = Joi.string().isoDate().required();
/** A runner's problem: bounded, since it is stored on its server's row and shown to operators. */
const problem = Joi.string().max(RUNNER_PROBLEM_MAX_CHARS);

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
  "runner:health": Joi.object<RunnerHealth>({ problem: problem.allow(null).required() })
    .unknown(true)
    .required(),
} as const;

/** The problem a runner said in its handshake (RunnerHandshakeAuth.problem): null when none, or nothing usable, as its version is. */
export function handshakeProblem(value: unknown): string | null {
  return typeof value === "string" && problem.validate(value).error === undefined ? value : null;
}
