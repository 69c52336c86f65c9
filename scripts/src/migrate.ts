/**
 * `pnpm db:migrate`: `prisma migrate deploy`, ended as soon as it reports
 * success. Prisma 6.19's WebAssembly schema engine leaves a ~10 s timer
 * running after the work is done, which would add 10 s to every start, test
 * run and release step. Its exit code is kept in every other case.
 */
import { spawn } from "node:child_process";
import path from "node:path";

const ROOT = path.resolve(__dirname, "../..");
const DONE = /All migrations have been successfully applied|No pending migrations to apply/;

export function migrateDeploy(env: NodeJS.ProcessEnv = process.env, quiet = false): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(path.join(ROOT, "node_modules/.bin/prisma"), ["migrate", "deploy"], {
      cwd: ROOT,
      env: { CHECKPOINT_DISABLE: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let succeeded = false;
    const onData = (stream: NodeJS.WriteStream) => (d: Buffer) => {
      out += d.toString();
      if (!quiet) stream.write(d);
      if (!succeeded && DONE.test(out)) {
        succeeded = true;
        setTimeout(() => child.kill("SIGTERM"), 200).unref();
      }
    };
    child.stdout.on("data", onData(process.stdout));
    child.stderr.on("data", onData(process.stderr));
    child.on("exit", (code) => {
      if (!succeeded && quiet) process.stderr.write(out);
      resolve(succeeded ? 0 : (code ?? 1));
    });
  });
}

if (require.main === module) {
  void migrateDeploy().then((code) => process.exit(code));
}
