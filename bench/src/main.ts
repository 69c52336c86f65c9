/**
 * `pnpm bench`: starts its own stack (fresh database, fresh Redis prefix,
 * dispatcher, gateway and a runner as separate processes) and measures, in
 * one run on this machine, runbridge's exec next to its baselines (spawning
 * `sh -c true`, OpenSSH fresh and multiplexed), the dispatcher at 1k/5k/10k
 * simulated runners, and the gateway's rejection path. Prints a markdown
 * report and writes bench/results/latest.{json,md}.
 *
 * BENCH_QUICK=1 shortens every phase (for working on the bench itself; its
 * figures are not the ones to publish). BENCH_CPU_PROF=1 profiles the gateway
 * and dispatcher (bench/results/profiles/).
 */
import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { execTarget, refusedExec } from "./exec-op";
import { interleavedLatency, measureLatency, measureThroughput, mergeThroughput, sampler, type LatencyResult, type ThroughputResult } from "./load";
import { SpawnBaseline } from "./spawn-baseline";
import { describeMachine, measureKernelCosts } from "./machine";
import { childrenProbe, costPerOperation, cpuShare, namedProbe, processProbe, rssMiB, type OperationCost, type ProcessProbe } from "./proc-stats";
import { ROOT, onCleanup, sleep } from "./procs";
import { startHttpFloor } from "./http-floor";
import { rejectionRate } from "./rejection";
import { checkTargets, renderMarkdown } from "./report";
import type { BenchResults, ScaleLevel } from "./results";
import { SimulatedRunners } from "./sim-runners";
import { sshBaseline } from "./ssh-baseline";
import { stageBreakdown } from "./stages";
import { createAutomationKeys, runBenchMain, startBenchStack, type Stack } from "./stack";
import { TokenKind, generateToken } from "@runbridge/common";

const quick = process.env.BENCH_QUICK === "1";
const CONCURRENCIES = [1, 8, 32];
const settings = {
  warmup: quick ? 20 : 200,
  samples: quick ? 100 : 500,
  throughputSeconds: quick ? 2 : 6,
  rounds: quick ? 2 : 4,
  latencyBlocks: 5,
  concurrencies: CONCURRENCIES.join(", "),
  keyPool: 60,
  sshFreshSamples: quick ? 5 : 30,
  sshMuxSamples: quick ? 30 : 200,
  rejectionSeconds: quick ? 3 : 10,
  rejectionConnections: 50,
  scaleLevels: quick ? "200, 1000" : "1000, 5000, 10000",
  connectPerSecond: 500,
  idleCpuSeconds: 5,
  scaleExecSamples: quick ? 50 : 300,
  ladderSamples: quick ? 50 : 300,
};
const SCALE_LEVELS = settings.scaleLevels.split(",").map((s) => Number(s.trim()));

const RESULTS_DIR = path.join(ROOT, "bench/results");
const LOG_DIR = path.join(RESULTS_DIR, "logs");

const t0 = Date.now();
function say(line: string): void {
  const s = ((Date.now() - t0) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[bench ${s}s] ${line}\n`);
}

interface ThroughputTarget {
  run: (concurrency: number, durationMs: number) => Promise<ThroughputResult>;
  probes: Record<string, ProcessProbe>;
}

interface ThroughputSeries {
  throughput: ThroughputResult[];
  /** At the highest concurrency, where every core is busy. */
  cpuMsPerOp: Record<string, number>;
  faultsPerOp: Record<string, number>;
}

/**
 * Throughput of each target at each concurrency, the targets taking turns in
 * rounds (a, b, a, b, ...) so a drift of the machine's speed shifts both alike;
 * the CPU and page faults each process spent per operation at the highest concurrency.
 */
async function throughputSeries<K extends string>(targets: Record<K, ThroughputTarget>): Promise<Record<K, ThroughputSeries>> {
  const names = Object.keys(targets) as K[];
  const out = Object.fromEntries(names.map((k) => [k, { throughput: [], cpuMsPerOp: {}, faultsPerOp: {} }])) as unknown as Record<K, ThroughputSeries>;
  const sliceMs = (settings.throughputSeconds * 1000) / settings.rounds;
  for (const c of CONCURRENCIES) {
    say(`throughput at concurrency ${c}: ${names.join(" and ")} taking turns, ${settings.rounds} rounds of ${(sliceMs / 1000).toFixed(2)} s each ...`);
    const runs = new Map<K, OperationCost<ThroughputResult>[]>(names.map((k) => [k, []]));
    for (let round = 0; round < settings.rounds; round++) {
      for (const k of names) runs.get(k)?.push(await costPerOperation(targets[k].probes, () => targets[k].run(c, sliceMs)));
    }
    for (const k of names) {
      const rounds = runs.get(k) ?? [];
      const merged = mergeThroughput(rounds.map((r) => r.result));
      out[k].throughput.push(merged);
      out[k].cpuMsPerOp = perOperationOver(rounds.map((r) => ({ completed: r.result.completed, perOp: r.cpuMsPerOp })));
      out[k].faultsPerOp = perOperationOver(rounds.map((r) => ({ completed: r.result.completed, perOp: r.faultsPerOp })));
      say(`  ${k}: ${merged.opsPerSecond.toFixed(0)}/s`);
    }
  }
  return out;
}

/** Per-operation figures of several runs as one, each run weighted by the operations it completed. */
function perOperationOver(runs: readonly { completed: number; perOp: Record<string, number> }[]): Record<string, number> {
  const completed = runs.reduce((n, r) => n + r.completed, 0);
  const totals: Record<string, number> = {};
  for (const r of runs) for (const [name, v] of Object.entries(r.perOp)) totals[name] = (totals[name] ?? 0) + v * r.completed;
  return Object.fromEntries(Object.entries(totals).map(([name, v]) => [name, completed > 0 ? v / completed : NaN]));
}

function brief(l: LatencyResult): string {
  return `p50 ${l.p50.toFixed(2)} ms, p95 ${l.p95.toFixed(2)} ms, p99 ${l.p99.toFixed(2)} ms`;
}

async function scalePhase(stack: Stack, keys: string[]): Promise<BenchResults["scale"]> {
  const pid = stack.dispatcher.pid as number;
  const levels: ScaleLevel[] = [];
  const sims = new SimulatedRunners(stack.dispatcherUrl, LOG_DIR);
  onCleanup(() => sims.stop());
  const max = Math.max(...SCALE_LEVELS);
  say(`scale: inserting ${max.toLocaleString("en-US")} server rows with hashed runner tokens ...`);
  await sims.createServers(stack.databaseUrl, stack.tenantId, max);
  const measureLevel = async (n: number, connectSeconds?: number): Promise<void> => {
    // Let connection handling, presence writes and GC settle before the idle window.
    await sleep(3000);
    const cpu = await cpuShare(pid, settings.idleCpuSeconds * 1000);
    const level: ScaleLevel = { simulatedRunners: n, dispatcherRssMiB: rssMiB(pid), dispatcherIdleCpuPct: cpu * 100, ...(connectSeconds !== undefined ? { connectSeconds } : {}) };
    levels.push(level);
    say(`scale: ${n.toLocaleString("en-US")} simulated runners: dispatcher RSS ${level.dispatcherRssMiB.toFixed(0)} MiB, idle CPU ${level.dispatcherIdleCpuPct.toFixed(1)} %`);
  };
  await measureLevel(0);
  let skipped: string | undefined;
  try {
    for (const n of SCALE_LEVELS) {
      say(`scale: connecting simulated runners up to ${n.toLocaleString("en-US")} (≤ ${settings.connectPerSecond}/s) ...`);
      const c0 = Date.now();
      await sims.growTo(n, settings.connectPerSecond, 180_000);
      await measureLevel(n, (Date.now() - c0) / 1000);
    }
  } catch (err) {
    skipped = err instanceof Error ? err.message : String(err);
    say(`scale: ${skipped}`);
  }
  let execAtMax: BenchResults["scale"]["execAtMax"];
  if (!skipped) {
    say(`scale: exec latency to the real runner with ${max.toLocaleString("en-US")} simulated runners connected ...`);
    const target = execTarget(stack.gatewayUrl, keys, stack.serverId);
    const l = await measureLatency(target.op, settings.scaleExecSamples, 20);
    target.close();
    execAtMax = { ...l, simulatedRunners: sims.connected };
    say(`scale: exec at ${max}: ${brief(l)}`);
  }
  const connectErrors = sims.connectErrors;
  const connectErrorReasons = sims.connectErrorReasons;
  await sims.stop();
  return { levels, ...(execAtMax ? { execAtMax } : {}), connectErrors, connectErrorReasons, ...(skipped ? { skipped } : {}) };
}

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const loadAtStart = os.loadavg();
  const tree = sourceTree();
  mkdirSync(LOG_DIR, { recursive: true });
  const tmp = mkdtempSync(path.join(os.tmpdir(), "runbridge-bench-"));
  onCleanup(() => rmSync(tmp, { recursive: true, force: true }));
  say(`logs of every process: ${LOG_DIR}`);

  say("starting the stack (fresh database runbridge_bench, dispatcher, gateway, runner) ...");
  const stack = await startBenchStack(LOG_DIR, path.join(tmp, "runner"));
  const machine = await describeMachine(stack.databaseUrl, stack.redisUrl);
  say(`machine: ${machine.cores} cores, ${machine.cpuModel}, ${machine.memoryGiB} GiB, Node ${machine.node}, PostgreSQL ${machine.postgres}, Redis ${machine.redis}`);
  const kernelCosts = measureKernelCosts();
  say(`kernel costs: system call ${kernelCosts.syscallUs.toFixed(2)} µs, page fault ${kernelCosts.pageFaultUs.toFixed(2)} µs`);
  const keys = await createAutomationKeys(stack, settings.keyPool, 1000);
  say(`${keys.length} automation keys (rate_limit 1000 each), used round-robin`);

  const exec = execTarget(stack.gatewayUrl, keys, stack.serverId);
  say(`latency: ${settings.samples} samples each of spawning sh -c true and of exec, in ${settings.latencyBlocks} alternating blocks ...`);
  const spawner = new SpawnBaseline();
  const execSample = sampler(exec.op);
  await spawner.sample(settings.warmup);
  await execSample(settings.warmup);
  // After the warm-ups: the stage breakdown reads the rows of the measured execs only.
  const window = { from: new Date() };
  const latency = await interleavedLatency(
    {
      spawn: { sample: spawner.sample, samples: settings.samples, warmup: 0 },
      exec: { sample: execSample, samples: settings.samples, warmup: 0 },
    },
    settings.latencyBlocks,
  );
  const stages = await stageBreakdown(stack.databaseUrl, window.from, new Date());
  const spawnLatency = latency.spawn;
  const execLatency = latency.exec;
  say(`spawn baseline: ${brief(spawnLatency)}`);
  say(`exec: ${brief(execLatency)}`);
  const pidOf = (child: { pid?: number }) => child.pid as number;
  const self = processProbe(process.pid);
  const series = await throughputSeries({
    spawn: {
      run: (c, ms) => spawner.throughput(c, ms),
      probes: { "Node process that spawns (and waits)": processProbe(spawner.pid), "`sh -c true` itself": childrenProbe(spawner.pid) },
    },
    exec: {
      run: (c, ms) => measureThroughput(exec.op, c, ms),
      probes: {
        gateway: processProbe(pidOf(stack.gateway)),
        dispatcher: processProbe(pidOf(stack.dispatcher)),
        runner: processProbe(pidOf(stack.runner)),
        "`sh -c true` (the runner's commands)": childrenProbe(pidOf(stack.runner)),
        "PostgreSQL (every backend)": namedProbe("postgres"),
        Redis: namedProbe("redis-server"),
        "load generator (HTTP client)": self,
      },
    },
  });
  spawner.close();
  const spawnSeries = series.spawn;
  const execSeries = series.exec;
  const execThroughput = execSeries.throughput;
  exec.close();
  say(`exec: throughput ${execThroughput.map((t) => `c${t.concurrency} ${t.opsPerSecond.toFixed(0)}/s`).join(", ")}; answers other than completed: ${JSON.stringify(exec.rejections)}`);

  // The gateway's front half, step by step, against the whole exec: each rung stops one stage later.
  const ladderSteps: { label: string; keys: string[]; body: unknown; status: number }[] = [
    { label: "401: unknown key (HTTP, routing, token check)", keys: [generateToken(TokenKind.AutomationKey)], body: { server_id: stack.serverId, command: "true" }, status: 401 },
    { label: "422: valid key, invalid body (+ key lookup, rate limit)", keys, body: { server_id: stack.serverId }, status: 422 },
    { label: "404: valid request, unknown server (+ validation, server lookup)", keys, body: { server_id: randomUUID(), command: "true" }, status: 404 },
  ];
  const ladder: BenchResults["ladder"] = [];
  for (const step of ladderSteps) {
    const t = refusedExec(stack.gatewayUrl, step.keys, step.body, step.status);
    const l = await measureLatency(t.op, settings.ladderSamples, 20);
    t.close();
    ladder.push({ label: step.label, status: step.status, latency: l, unexpected: t.rejections });
    say(`ladder: ${step.label}: ${brief(l)}`);
  }

  const sshExec = execTarget(stack.gatewayUrl, keys, stack.serverId);
  const ssh = await sshBaseline(path.join(tmp, "ssh"), LOG_DIR, { freshSamples: settings.sshFreshSamples, muxSamples: settings.sshMuxSamples, blocks: settings.latencyBlocks, exec: sshExec.op }, say);
  sshExec.close();
  say(
    ssh.skipped
      ? `ssh baseline skipped: ${ssh.skipped}`
      : `ssh: fresh ${brief(ssh.fresh as LatencyResult)}; multiplexed ${brief(ssh.multiplexed as LatencyResult)}; exec meanwhile ${brief(ssh.exec as LatencyResult)}`,
  );

  const execUrl = `${stack.gatewayUrl}/api/automation/v1/exec`;
  const body = { server_id: stack.serverId, command: "true" };
  say(`rejection: 401 with an unknown rca_ key, ${settings.rejectionConnections} connections, ${settings.rejectionSeconds} s ...`);
  const unauthorized = await rejectionRate(execUrl, generateToken(TokenKind.AutomationKey), body, 401, settings.rejectionConnections, settings.rejectionSeconds);
  say(`rejection: 401 at ${unauthorized.perSecond.toFixed(0)}/s (${JSON.stringify(unauthorized.statusCodes)})`);
  const [limited] = await createAutomationKeys(stack, 1, 1);
  // Spend the key's one request of the minute (any answer counts), so everything after is a 429.
  await stack.admin.request("POST", "/api/automation/v1/exec", limited as string, body);
  say(`rejection: 429 with an exhausted key (rate_limit 1), ${settings.rejectionSeconds} s ...`);
  const rateLimited = await rejectionRate(execUrl, limited as string, body, 429, settings.rejectionConnections, settings.rejectionSeconds);
  say(`rejection: 429 at ${rateLimited.perSecond.toFixed(0)}/s (${JSON.stringify(rateLimited.statusCodes)})`);
  say(`rejection: the floor, a bare node:http server answering the same 401, ${settings.rejectionSeconds} s ...`);
  const floorServer = await startHttpFloor();
  const floor = await rejectionRate(floorServer.url, generateToken(TokenKind.AutomationKey), body, 401, settings.rejectionConnections, settings.rejectionSeconds);
  floorServer.stop();
  say(`rejection: bare node:http 401 at ${floor.perSecond.toFixed(0)}/s`);

  const scale = await scalePhase(stack, keys);

  const results: BenchResults = {
    startedAt,
    finishedAt: new Date().toISOString(),
    command: "pnpm bench",
    tree,
    machine,
    kernelCosts,
    loadAverage: { start: loadAtStart, end: os.loadavg() },
    settings,
    exec: { latency: execLatency, throughput: execThroughput, nonCompleted: exec.rejections, stages, cpuMsPerOp: execSeries.cpuMsPerOp, faultsPerOp: execSeries.faultsPerOp },
    spawn: { latency: spawnLatency, throughput: spawnSeries.throughput, cpuMsPerOp: spawnSeries.cpuMsPerOp, faultsPerOp: spawnSeries.faultsPerOp },
    ssh,
    rejection: { unauthorized, rateLimited, floor },
    ladder,
    scale,
  };
  const checks = checkTargets(results);
  const markdown = renderMarkdown(results, checks);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const base = quick ? "quick" : "latest";
  writeFileSync(path.join(RESULTS_DIR, `${base}.json`), `${JSON.stringify({ ...results, targets: checks }, null, 2)}\n`);
  writeFileSync(path.join(RESULTS_DIR, `${base}.md`), `${markdown}\n`);
  process.stdout.write(`\n${markdown}\n`);
  say(`written: bench/results/${base}.json and bench/results/${base}.md; stopping everything ...`);
}

/** HEAD, and whether the sources the services are built from differ from it (the figures belong to that code). */
function sourceTree(): { commit: string; dirty: boolean } {
  const git = (args: string[]): string => {
    const r = spawnSync("git", args, { cwd: ROOT, encoding: "utf8" });
    return r.status === 0 ? r.stdout.trim() : "";
  };
  const commit = git(["rev-parse", "--short=12", "HEAD"]) || "unknown";
  const dirty = git(["status", "--porcelain", "--", "apps", "packages", "prisma"]) !== "";
  return { commit, dirty };
}

runBenchMain("bench", main, say);
