/**
 * `pnpm bench:hops`: the critical path of an exec of `true`, hop by hop.
 * Starts the bench's stack, warms it up, then captures the loopback interface
 * with tcpdump while it runs sequential execs, and prints when each message of
 * the pipeline was sent (medians) and how many messages each process sent to
 * PostgreSQL and Redis per exec. Writes bench/results/hops.md.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ensureDebianPackage } from "./debian";
import { execTarget } from "./exec-op";
import { classifyExec, hopTimeline, messagesPerExec, parseTcpdump, splitExecs, type HopPorts } from "./hops";
import { measureLatency } from "./load";
import { ROOT, onCleanup, sleep } from "./procs";
import { createAutomationKeys, runBenchMain, startBenchStack, type Stack } from "./stack";
import { summarize } from "./stats";

const SAMPLES = Number(process.env.BENCH_HOPS_SAMPLES ?? 200);
const WARMUP = 300;
/** Between execs, so that one exec's last messages never overlap the next one's first. */
const GAP_MS = 20;
const TCPDUMP = "/usr/bin/tcpdump";
const RESULTS_DIR = path.join(ROOT, "bench/results");

function say(line: string): void {
  process.stderr.write(`[bench:hops] ${line}\n`);
}

/** Which of the stack's processes holds each local TCP port (from `ss`). */
function portOwners(stack: Stack): Map<number, string> {
  const names = new Map<number, string>([
    [stack.gateway.pid as number, "gateway"],
    [stack.dispatcher.pid as number, "dispatcher"],
    [stack.runner.pid as number, "runner"],
  ]);
  const r = spawnSync("ss", ["-tnpH"], { encoding: "utf8" });
  const owners = new Map<number, string>();
  for (const line of r.stdout.split("\n")) {
    const m = /127\.0\.0\.1:(\d+)\s+\S+:\d+\s+users:\(\("[^"]*",pid=(\d+)/.exec(line);
    const name = m && names.get(Number(m[2]));
    if (m && name) owners.set(Number(m[1]), name);
  }
  return owners;
}

/** tcpdump on loopback, segments with a payload only; resolves once it is capturing. */
async function startCapture(file: string): Promise<() => Promise<void>> {
  const child = spawn(TCPDUMP, ["-i", "lo", "-nn", "-U", "-s", "256", "-w", file, "tcp and (tcp[tcpflags] & tcp-push != 0)"], { stdio: ["ignore", "ignore", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes("listening on")) resolve();
    });
    void exited.then(() => reject(new Error(`tcpdump exited: ${err.trim()}`)));
  });
  return async () => {
    child.kill("SIGINT");
    await exited;
  };
}

async function main(): Promise<void> {
  const missing = ensureDebianPackage(TCPDUMP, "tcpdump", say);
  if (missing) throw new Error(missing);
  const tmp = mkdtempSync(path.join(os.tmpdir(), "runbridge-hops-"));
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  const logDir = path.join(tmp, "logs");
  mkdirSync(logDir);
  say("starting the stack (fresh database runbridge_bench, dispatcher, gateway, runner) ...");
  const stack = await startBenchStack(logDir, path.join(tmp, "runner"));
  const keys = await createAutomationKeys(stack, 60, 1000);
  const exec = execTarget(stack.gatewayUrl, keys, stack.serverId);
  say(`${WARMUP} execs to warm up, then ${SAMPLES} captured, one at a time ...`);
  await measureLatency(exec.op, WARMUP, 0);
  const owners = portOwners(stack);
  const pcap = path.join(tmp, "loopback.pcap");
  const stopCapture = await startCapture(pcap);
  const latencies: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    const t0 = performance.now();
    if (!(await exec.op())) throw new Error(`an exec did not complete: ${JSON.stringify(exec.rejections)}`);
    latencies.push(performance.now() - t0);
    await sleep(GAP_MS);
  }
  await stopCapture();
  exec.close();

  const ports: HopPorts = { gateway: Number(new URL(stack.gatewayUrl).port), dispatcher: Number(new URL(stack.dispatcherUrl).port), postgres: 5432, redis: 6379 };
  const text = spawnSync(TCPDUMP, ["-r", pcap, "-nn", "-tt", "-A"], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 }).stdout;
  const execs = splitExecs(parseTcpdump(text), ports);
  const timeline = hopTimeline(execs.map((e) => classifyExec(e, ports)));
  const messages = messagesPerExec(execs, ports, owners);

  const lines = [
    `Hops of an exec of \`true\` (\`pnpm bench:hops\`, ${new Date().toISOString()}, ${execs.length} execs captured one at a time on loopback; Linux ${os.release()}).`,
    "",
    "| Message (sent) | ms after the request reached the gateway (p50) | since the row above | execs seen in |",
    "| --- | --- | --- | --- |",
    ...timeline.map((r) => `| ${r.event.trim()} | ${r.atMs.toFixed(2)} | ${r.sinceMs.toFixed(2)} | ${r.seen} |`),
    "",
    `The client's own latency meanwhile: p50 ${summarize(latencies).p50.toFixed(2)} ms (tcpdump's copy of every segment included).`,
    "",
    "| Process | messages to PostgreSQL per exec (p50) | commands to Redis per exec (p50) |",
    "| --- | --- | --- |",
    ...messages.map((m) => `| ${m.process} | ${m.postgres} | ${m.redis} |`),
    "",
  ];
  const report = lines.join("\n");
  mkdirSync(RESULTS_DIR, { recursive: true });
  writeFileSync(path.join(RESULTS_DIR, "hops.md"), report);
  process.stdout.write(`${report}\n`);
}

runBenchMain("bench:hops", main, say);
