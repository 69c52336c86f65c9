/**
 * Exits with `code` once everything written to stdout and stderr has left the
 * process. Node writes to a pipe asynchronously — and a CI log is a pipe — so
 * process.exit() right after a large write dropped whatever the pipe had not
 * taken yet (all but the first 64 KiB of a long output).
 */
export function exitWhenFlushed(code: number): Promise<never> {
  // The first exit asked for wins: an interruption exiting 130 while the command's own end is still being
  // written must not be overtaken by that end's exit code.
  exiting ??= (async () => {
    // A write's callback runs once every write queued before it is done.
    await Promise.all([process.stdout, process.stderr].map((s) => new Promise<void>((resolve) => (s.writableLength === 0 ? resolve() : s.write("", () => resolve())))));
    process.exit(code);
  })();
  return exiting;
}

let exiting: Promise<never> | undefined;
