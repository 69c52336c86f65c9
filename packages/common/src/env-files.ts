import { X509Certificate, createPrivateKey } from "node:crypto";
import { accessSync, constants, readFileSync, statSync } from "node:fs";
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

/**
 * Joi custom() check that a variable names a readable PEM file holding a
 * certificate (a CA, or a server certificate chain, whose first certificate is
 * parsed) or a private key. A wrong file (the key where the certificate goes,
 * a DER file, a truncated copy) would otherwise fail only when the listener or
 * the connection is set up, after boot. The message never quotes the file's
 * content: a private key must not reach a log.
 */
export function pemFile(kind: "certificate" | "private key"): Joi.CustomValidator<string> {
  return (file, helpers) => {
    const readable = readableFile(file, helpers);
    if (typeof readable !== "string") return readable;
    const problem = pemProblem(readFileSync(file), kind);
    return problem ? helpers.message({ custom: "{#label} names {#file}, which {#problem}" }, { file, problem }) : file;
  };
}

function pemProblem(pem: Buffer, kind: "certificate" | "private key"): string | undefined {
  try {
    if (kind === "certificate") new X509Certificate(pem);
    else createPrivateKey(pem);
    return undefined;
  } catch {
    return kind === "certificate" ? `does not hold a PEM certificate (expected "-----BEGIN CERTIFICATE-----")` : `does not hold an unencrypted PEM private key (expected "-----BEGIN ... PRIVATE KEY-----", without a passphrase)`;
  }
}

/** Why a certificate file and a key file do not make a pair (both already checked as PEM), or undefined. */
export function keyPairProblem(certFile: string, keyFile: string): string | undefined {
  try {
    return new X509Certificate(readFileSync(certFile)).checkPrivateKey(createPrivateKey(readFileSync(keyFile))) ? undefined : "is not the private key of that certificate";
  } catch {
    return undefined; // an unreadable or malformed file is reported on its own variable
  }
}
