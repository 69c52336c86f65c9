import type { LatencyResult, ThroughputResult } from "./load";
import type { RejectionResult } from "./rejection";
import type { BenchResults, TargetCheck } from "./results";
import { ratio } from "./stats";

export const GiB_IN_MiB = 1024;

const ms = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "–" : v < 10 ? `${v.toFixed(2)} ms` : `${v.toFixed(1)} ms`);
const perS = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? "–" : `${Math.round(v).toLocaleString("en-US")}/s`);
const times = (v: number): string => (Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)}×` : "–");
const pct = (v: number): string => (Number.isFinite(v) ? `${(v * 100).toFixed(0)} %` : "–");
const mark = (pass: boolean | undefined): string => (pass === undefined ? "" : pass ? "PASS" : "**FAIL**");

function at(list: ThroughputResult[], concurrency: number): ThroughputResult | undefined {
  return list.find((t) => t.concurrency === concurrency);
}

const rejectionTarget = (status: number): string => `≥ 5,000 rejected requests/s on the gateway (${status})`;

/** The exec figures SSH is compared with: the samples taken between the SSH ones (older result files: the exec phase's). */
function execBesideSsh(r: BenchResults): LatencyResult {
  return r.ssh.exec ?? r.exec.latency;
}

/** The issue's targets, each checked against this run's figures. A skipped measurement is a failed target, never a silent pass. */
export function checkTargets(r: BenchResults): TargetCheck[] {
  const checks: TargetCheck[] = [];
  const ours = r.exec.latency;
  checks.push({ target: "exec p50 ≤ 10 ms at concurrency 1", figure: ms(ours.p50), value: ours.p50, pass: ours.p50 <= 10 });
  checks.push({ target: "exec p99 ≤ 25 ms at concurrency 1", figure: ms(ours.p99), value: ours.p99, pass: ours.p99 <= 25 });
  const share = ratio(at(r.exec.throughput, 32)?.opsPerSecond, at(r.spawn.throughput, 32)?.opsPerSecond);
  checks.push({ target: "throughput at concurrency 32 ≥ 50 % of direct spawn", figure: pct(share), value: share, pass: share >= 0.5 });
  const alongside = execBesideSsh(r);
  const fresh = ratio(r.ssh.fresh?.p50, alongside.p50);
  checks.push({ target: "≥ 25× faster than a fresh SSH connection (p50)", figure: r.ssh.skipped ? "skipped" : times(fresh), value: fresh, pass: fresh >= 25 });
  const mux = ratio(r.ssh.multiplexed?.p50, alongside.p50);
  checks.push({ target: "≥ 2.5× faster than multiplexed SSH (p50)", figure: r.ssh.skipped ? "skipped" : times(mux), value: mux, pass: mux >= 2.5 });
  const top = r.scale.levels.find((l) => l.simulatedRunners === 10_000);
  const rss = top?.dispatcherRssMiB ?? NaN;
  checks.push({ target: "10,000 connected runners on one dispatcher < 1 GiB RSS", figure: Number.isFinite(rss) ? `${rss.toFixed(0)} MiB` : "not reached", value: rss, pass: rss < GiB_IN_MiB });
  for (const rej of [r.rejection.unauthorized, r.rejection.rateLimited]) {
    checks.push({ target: rejectionTarget(rej.expectedStatus), figure: perS(rej.perSecond), value: rej.perSecond, pass: rej.perSecond >= 5000 });
  }
  return checks;
}

function highestConcurrency(r: BenchResults): number {
  return Math.max(...r.exec.throughput.map((t) => t.concurrency));
}

function latencyCells(l: LatencyResult | undefined): string[] {
  return [ms(l?.p50), ms(l?.p95), ms(l?.p99)];
}

/** The markdown report: what the bench prints and what docs/benchmarks.md copies. */
export function renderMarkdown(r: BenchResults, checks: TargetCheck[]): string {
  const m = r.machine;
  const out: string[] = [];
  const row = (cells: (string | number)[]): void => void out.push(`| ${cells.join(" | ")} |`);
  const head = (cells: string[]): void => {
    row(cells);
    row(cells.map(() => "---"));
  };
  const check = (prefix: string): string => mark(checks.find((c) => c.target.startsWith(prefix))?.pass);

  out.push(`Run of \`${r.command}\`, ${r.startedAt} → ${r.finishedAt}, services built from commit ${r.tree.commit}${r.tree.dirty ? " plus uncommitted changes under apps/, packages/ or prisma/" : ""}.`);
  out.push("");
  out.push(`Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGiB} GiB RAM, ${m.os}, Linux ${m.kernel}; Node ${m.node}, PostgreSQL ${m.postgres}, Redis ${m.redis}, ${m.openssh}. Everything (load generator, gateway, dispatcher, runner, PostgreSQL, Redis, sshd) on this one box.`);
  const load = (l: number[]): string => l.map((v) => v.toFixed(2)).join(" / ");
  out.push("");
  const k = r.kernelCosts;
  if (k) {
    out.push(
      `Kernel costs measured at the start: a system call (fstat from Node) ${k.syscallUs.toFixed(2)} µs, a page fault on fresh memory ${k.pageFaultUs.toFixed(2)} µs. ` +
        "Both differ by an order of magnitude between virtual machines, and every figure that spawns processes or takes new memory moves with them.",
    );
    out.push("");
  }
  out.push(`Load average (1 / 5 / 15 min) at the start: ${load(r.loadAverage.start)}; at the end: ${load(r.loadAverage.end)} (on ${m.cores} cores; anything well above the bench's own load means other work shared the machine).`);
  out.push("");

  out.push("#### Exec of `true`, end to end, against spawning `sh -c true` from Node");
  out.push("");
  head(["Figure", "runbridge exec", "spawn `sh -c true`", "ours / spawn", "Target", ""]);
  const o = r.exec.latency;
  const s = r.spawn.latency;
  row(["latency p50, concurrency 1", ms(o.p50), ms(s.p50), times(ratio(o.p50, s.p50)), "≤ 10 ms", check("exec p50")]);
  row(["latency p95, concurrency 1", ms(o.p95), ms(s.p95), times(ratio(o.p95, s.p95)), "", ""]);
  row(["latency p99, concurrency 1", ms(o.p99), ms(s.p99), times(ratio(o.p99, s.p99)), "≤ 25 ms", check("exec p99")]);
  for (const c of [1, 8, 32]) {
    const ot = at(r.exec.throughput, c);
    const st = at(r.spawn.throughput, c);
    row([`throughput, concurrency ${c}`, perS(ot?.opsPerSecond), perS(st?.opsPerSecond), pct(ratio(ot?.opsPerSecond, st?.opsPerSecond)), c === 32 ? "≥ 50 % of spawn" : "", c === 32 ? check("throughput") : ""]);
  }
  const failed = Object.entries(r.exec.nonCompleted);
  out.push("");
  out.push(
    `Latency: ${o.samples} sequential samples after ${r.settings.warmup} unmeasured${r.settings.latencyBlocks ? `, in ${r.settings.latencyBlocks} blocks alternating with the spawn baseline's` : ""}; ` +
      `throughput: closed loop for ${r.settings.throughputSeconds} s per concurrency${r.settings.rounds ? `, in ${r.settings.rounds} rounds alternating with the spawn baseline's` : ""}. ` +
      `Exec answers other than 200 completed (exit 0) during all exec runs: ${failed.length === 0 ? "**0**" : failed.map(([k, v]) => `${k}: ${v}`).join(", ")}.`,
  );
  out.push("");
  const st = r.exec.stages;
  if (st && st.operations > 0) {
    out.push(`Where the time of an exec goes at concurrency 1 (from the timestamps on the ${st.operations} operation rows of the latency run):`);
    out.push("");
    head(["Stage", "p50", "p95"]);
    for (const x of st.stages) row([x.stage, ms(x.p50), ms(x.p95)]);
    const total = st.stages[st.stages.length - 1];
    if (total) row(["rest of the client's latency (p50 − p50): gateway before the insert (auth, lookups, presence) and after the result (notification, reload, answer), HTTP", ms(o.p50 - total.p50), ""]);
    out.push("");
  }

  const cpu = r.exec.cpuMsPerOp;
  if (cpu && Object.keys(cpu).length) {
    const top = highestConcurrency(r);
    const lines = (m: Record<string, number> | undefined): [string, number][] => Object.entries(m ?? {}).filter(([, v]) => Number.isFinite(v));
    const sum = (m: Record<string, number> | undefined): number => lines(m).reduce((a, [, v]) => a + v, 0);
    out.push(`CPU and minor page faults per operation at concurrency ${top}, by process (utime+stime and minflt from /proc over the throughput run, divided by the operations completed; PostgreSQL and Redis include anything else they served meanwhile):`);
    out.push("");
    head(["Process", "ms of CPU per exec of `true`", "page faults per exec", "", "ms of CPU per spawn of `sh -c true`", "page faults per spawn"]);
    const ours = lines(cpu);
    const base = lines(r.spawn.cpuMsPerOp);
    const faults = (m: Record<string, number> | undefined, name: string): string => {
      const v = m?.[name];
      return v === undefined || !Number.isFinite(v) ? "" : v.toFixed(0);
    };
    for (let i = 0; i < Math.max(ours.length, base.length); i++) {
      const a = ours[i];
      const b = base[i];
      row([a ? a[0] : "", a ? a[1].toFixed(2) : "", a ? faults(r.exec.faultsPerOp, a[0]) : "", b ? b[0] : "", b ? b[1].toFixed(2) : "", b ? faults(r.spawn.faultsPerOp, b[0]) : ""]);
    }
    const total = sum(cpu);
    const baseTotal = sum(r.spawn.cpuMsPerOp);
    const faultTotal = (m: Record<string, number> | undefined): string => (m && Object.keys(m).length ? `**${sum(m).toFixed(0)}**` : "");
    row(["**total**", `**${total.toFixed(2)}**`, faultTotal(r.exec.faultsPerOp), "**total**", baseTotal ? `**${baseTotal.toFixed(2)}**` : "–", faultTotal(r.spawn.faultsPerOp)]);
    out.push("");
    out.push(
      `With every core busy, throughput is at most cores ÷ CPU per operation: ${perS((r.machine.cores * 1000) / total)} for exec, ${baseTotal ? perS((r.machine.cores * 1000) / baseTotal) : "–"} for the bare spawn.`,
    );
    out.push("");
  }

  if (r.ladder?.length) {
    out.push("The gateway's front half on its own: exec requests refused at successive stages, concurrency 1:");
    out.push("");
    head(["Request", "p50", "p95", "p99", "other answers"]);
    for (const step of r.ladder) {
      const other = Object.entries(step.unexpected);
      row([step.label, ...latencyCells(step.latency), other.length ? other.map(([k, v]) => `${k}: ${v}`).join(", ") : "0"]);
    }
    row(["200: the whole exec of `true` (from above)", ...latencyCells(o), ""]);
    out.push("");
  }

  out.push("#### OpenSSH on loopback (`ssh host true`)");
  out.push("");
  if (r.ssh.skipped) {
    out.push(`Skipped: ${r.ssh.skipped}`);
  } else {
    head(["Figure", "p50", "p95", "p99", "samples", "ssh / ours (p50)", "Target", ""]);
    const ours = execBesideSsh(r);
    row(["ssh, fresh connection", ...latencyCells(r.ssh.fresh), r.ssh.fresh?.samples ?? 0, times(ratio(r.ssh.fresh?.p50, ours.p50)), "≥ 25×", check("≥ 25×")]);
    row(["ssh, multiplexed (ControlMaster)", ...latencyCells(r.ssh.multiplexed), r.ssh.multiplexed?.samples ?? 0, times(ratio(r.ssh.multiplexed?.p50, ours.p50)), "≥ 2.5×", check("≥ 2.5×")]);
    row([r.ssh.exec ? "runbridge exec, between the SSH samples" : "runbridge exec (from above)", ...latencyCells(ours), ours.samples, "1×", "", ""]);
    out.push("");
    out.push(
      r.ssh.exec
        ? `Fresh, multiplexed and exec samples taken in ${r.settings.latencyBlocks} alternating blocks, so the ratios compare the same moments of the machine; exec answers other than completed among them: ${r.ssh.exec.failures}. ` +
            "The private sshd is leaner than a distribution's default (no PAM session, no shell rc files), which only flatters SSH."
        : "Exec figures from the exec phase above.",
    );
  }
  out.push("");

  out.push("#### Scale: simulated runners connected to one dispatcher");
  out.push("");
  if (r.scale.skipped) out.push(`Stopped early: ${r.scale.skipped}`);
  head(["Connected simulated runners", "dispatcher RSS", "dispatcher idle CPU (% of one core)", "time to connect the step's new runners", "Target", ""]);
  let prev = 0;
  for (const l of r.scale.levels) {
    const isTop = l.simulatedRunners === 10_000;
    const connect = l.connectSeconds === undefined ? "–" : `${l.connectSeconds.toFixed(1)} s (${Math.round((l.simulatedRunners - prev) / l.connectSeconds)}/s)`;
    prev = l.simulatedRunners;
    row([l.simulatedRunners.toLocaleString("en-US"), `${l.dispatcherRssMiB.toFixed(0)} MiB`, `${l.dispatcherIdleCpuPct.toFixed(1)} %`, connect, isTop ? "< 1 GiB RSS" : "", isTop ? check("10,000") : ""]);
  }
  const e = r.scale.execAtMax;
  out.push("");
  if (e) {
    out.push(
      `Exec of \`true\` to the real runner while ${e.simulatedRunners.toLocaleString("en-US")} simulated runners are connected: p50 ${ms(e.p50)}, p95 ${ms(e.p95)}, p99 ${ms(e.p99)} (${e.samples} samples, ${e.failures} not completed).`,
    );
  }
  out.push(
    `Idle CPU is utime+stime of the dispatcher over ${r.settings.idleCpuSeconds} s with nothing to deliver; connection errors seen by the simulated runners while connecting (each retried until connected): ${r.scale.connectErrors}${
      r.scale.connectErrors
        ? ` (${Object.entries(r.scale.connectErrorReasons ?? {})
            .sort((a, b) => b[1] - a[1])
            .map(([k, v]) => `${k}: ${v}`)
            .join("; ")})`
        : ""
    }.`,
  );
  out.push("");

  out.push("#### Gateway rejection path (autocannon)");
  out.push("");
  const floor = r.rejection.floor;
  head(["Rejection", "rejected/s", "share of the floor", "latency p50", "latency p99", "answers by status", "Target", ""]);
  const codesOf = (rej: RejectionResult) =>
    Object.entries(rej.statusCodes)
      .map(([k, v]) => `${k}: ${v.toLocaleString("en-US")}`)
      .join(", ") + (rej.errors ? `, errors: ${rej.errors}` : "");
  for (const [label, rej] of [
    ["401, well-formed unknown `rca_` key", r.rejection.unauthorized],
    ["429, key with rate_limit 1, exhausted", r.rejection.rateLimited],
  ] as const) {
    const share = floor ? pct(rej.perSecond / floor.perSecond) : "–";
    row([label, perS(rej.perSecond), share, `${rej.latencyP50Ms} ms`, `${rej.latencyP99Ms} ms`, codesOf(rej), "≥ 5,000/s", check(rejectionTarget(rej.expectedStatus))]);
  }
  if (floor) row(["the floor: a bare `node:http` server giving the same 401", perS(floor.perSecond), "100 %", `${floor.latencyP50Ms} ms`, `${floor.latencyP99Ms} ms`, codesOf(floor), "", ""]);
  out.push("");
  out.push(
    `${r.rejection.unauthorized.connections} connections, ${r.settings.rejectionSeconds} s each, POST /api/automation/v1/exec with a valid body.` +
      (floor ? " The floor is a Node process that answers every request with the gateway's 401 (no framework, no key check): what Node's HTTP server and this machine allow, with autocannon on the same cores." : ""),
  );
  out.push("");

  out.push("#### Targets");
  out.push("");
  head(["Target", "This run", ""]);
  for (const c of checks) row([c.target, c.figure, mark(c.pass)]);
  out.push("");
  return out.join("\n");
}
