import { readFileSync } from "node:fs";
import { UsageError } from "./api";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A valid name that no object can carry as a key (assigning it sets the prototype): the gateway refuses it too. */
const RESERVED = "__proto__";
const RESERVED_REASON = `${RESERVED} cannot be passed (a JavaScript object cannot hold it as a key); rename the variable`;

/**
 * Environment for a remote command from `--env` flags and `--env-file` files.
 * Errors name the variable, never its value.
 */
export class EnvBuilder {
  readonly vars: Record<string, string> = {};

  /** `K=V`, or a bare `K` to pass this process's own value of K (keeps secrets out of argv). */
  flag(spec: string, local: Record<string, string | undefined> = process.env): void {
    const eq = spec.indexOf("=");
    if (eq < 0) {
      const name = spec.trim();
      this.checkName(name, "--env");
      const value = local[name];
      if (value === undefined) throw new UsageError(`--env ${name}: ${name} is not set in this environment (use --env ${name}=VALUE)`);
      this.vars[name] = value;
      return;
    }
    const name = spec.slice(0, eq);
    this.checkName(name, "--env");
    this.vars[name] = spec.slice(eq + 1);
  }

  file(path: string): void {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new UsageError(`--env-file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    Object.assign(this.vars, parseEnvLines(text, `--env-file ${path}`));
  }

  private checkName(name: string, where: string): void {
    // The argument is not shown: `--env "$DATABASE_URL"` (the value, not its name) is the usual
    // way to get here, and a part of a secret cut at "=" is what CI log masking does not catch.
    if (!ENV_NAME.test(name)) {
      throw new UsageError(
        `${where}: expected NAME or NAME=VALUE with a valid variable name (letters, digits, _; not starting with a digit); the argument is not shown, as it may be a secret — was a value passed (--env "$NAME") instead of a name (--env NAME)?`,
      );
    }
    if (name === RESERVED) throw new UsageError(`${where}: ${RESERVED_REASON}`);
  }
}

/**
 * dotenv-style lines, read as Docker Compose reads an env_file: `KEY=value`,
 * optional `export ` prefix, `#` comment lines and blank lines ignored; in an
 * unquoted value a `#` after a space or tab starts a comment (`a#b` keeps its
 * `#`: secrets have them); `'single'` quotes literal, `"double"` quotes with
 * \n, \t, \", \\ escapes, either optionally followed by a comment. A value
 * may contain `=`.
 */
export function parseEnvLines(text: string, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const line = raw.replace(/^\s*export\s+/, "");
    if (!line.trim() || line.trimStart().startsWith("#")) return;
    const eq = line.indexOf("=");
    const name = (eq < 0 ? line : line.slice(0, eq)).trim();
    // Only the line number in either error: a line without a valid KEY= is as likely a secret's own
    // content (the continuation of an unquoted multi-line value, a PEM block) as a misspelt name.
    if (eq < 0 || !ENV_NAME.test(name)) {
      throw new UsageError(`${where} line ${i + 1}: expected KEY=VALUE with a valid variable name (the line is not shown: it may hold a secret)`);
    }
    if (name === RESERVED) throw new UsageError(`${where} line ${i + 1}: ${RESERVED_REASON}`);
    const value = parseValue(line.slice(eq + 1));
    if (value === undefined) {
      throw new UsageError(
        `${where} line ${i + 1} (${name}): a quoted value must end with its closing quote on the same line, followed by nothing but an optional # comment (the value is not shown)`,
      );
    }
    out[name] = value;
  });
  return out;
}

/** The value after `KEY=`, or undefined for a quoted one that is not closed or has more than a comment after it. */
function parseValue(raw: string): string | undefined {
  const v = raw.trim();
  const quote = v[0];
  if (quote !== "'" && quote !== '"') {
    const comment = raw.search(/[ \t]#/);
    return (comment < 0 ? raw : raw.slice(0, comment)).trim();
  }
  let end = 1;
  while (end < v.length && v[end] !== quote) end += quote === '"' && v[end] === "\\" ? 2 : 1;
  if (end >= v.length) return undefined;
  const after = v.slice(end + 1).trim();
  if (after !== "" && !after.startsWith("#")) return undefined;
  const inner = v.slice(1, end);
  return quote === "'" ? inner : inner.replace(/\\([nrt"\\])/g, (_m, c: string) => ({ n: "\n", r: "\r", t: "\t", '"': '"', "\\": "\\" })[c] ?? c);
}
