import { fork } from "node:child_process";
import path from "node:path";
import { onCleanup } from "./procs";

/** Starts http-floor-worker.ts and resolves with its URL and a way to stop it. */
export async function startHttpFloor(): Promise<{ url: string; stop: () => void }> {
  const child = fork(path.join(__dirname, "http-floor-worker.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const stop = () => {
    if (child.connected) child.disconnect();
  };
  onCleanup(stop);
  const port = await new Promise<number>((resolve, reject) => {
    child.once("message", (m: { port: number }) => resolve(m.port));
    child.once("exit", (code, signal) => reject(new Error(`the HTTP floor server exited (${signal ?? code}) before listening`)));
  });
  return { url: `http://127.0.0.1:${port}/api/automation/v1/exec`, stop };
}
