import { accessSync, constants, statSync } from "node:fs";
import type Joi from "joi";

/**
 * Joi custom() check that a variable names a file this process can read. The
 * file is read only once connections are open (TLS certificates, a pinned CA),
 * so without it a bad path crashed with a stack trace after boot instead of
 * being listed with the other bad variables. The path is not a secret.
 */
export function readableFile(file: string, helpers: Joi.CustomHelpers): string | Joi.ErrorReport {
  const problem = fileProblem(file);
  return problem ? helpers.message({ custom: "{#label} names {#file}, which {#problem}" }, { file, problem }) : file;
}

function fileProblem(file: string): string | undefined {
  try {
    if (!statSync(file).isFile()) return "is not a file";
    accessSync(file, constants.R_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return "does not exist";
    if (code === "EACCES" || code === "EPERM") return `cannot be read by this user (${code})`;
    return `cannot be read (${code ?? String(err)})`;
  }
}
