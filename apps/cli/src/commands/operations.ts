import { UsageError } from "../client/api";
import { followOperation, getOperation, OutputPrinter } from "../client/follow";
import { outcomeOf } from "../client/outcome";
import type { OperationPage, OperationView } from "../client/types";
import { CONNECTION_OPTIONS, connect, parse, required } from "./connection";

export const OPERATIONS_USAGE = `usage: runbridge operations get ID
       runbridge operations list --run-id ID [--limit N]
       runbridge operations logs ID [--follow]

get prints the operation as JSON. list prints every operation of a CI run as a
JSON array, newest first. logs prints the output (stdout to stdout, stderr to
stderr); with --follow it streams until the operation ends and exits with the
code exec would have.
`;

export async function operationsCommand(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case "get":
      return get(rest);
    case "list":
      return list(rest);
    case "logs":
      return logs(rest);
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(OPERATIONS_USAGE);
      return 0;
    default:
      throw new UsageError(sub ? `unknown operations command "${sub}"` : "operations needs get, list or logs");
  }
}

function oneId(positionals: string[]): string {
  if (positionals.length !== 1 || !positionals[0]) throw new UsageError("give exactly one operation id");
  return positionals[0];
}

async function get(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, CONNECTION_OPTIONS, "any");
  if (values.help) {
    process.stdout.write(OPERATIONS_USAGE);
    return 0;
  }
  const id = oneId(positionals);
  const { client } = connect(values);
  const op = await getOperation(client, id);
  process.stdout.write(`${JSON.stringify(op, null, 2)}\n`);
  return 0;
}

async function list(args: string[]): Promise<number> {
  const { values } = parse(args, { ...CONNECTION_OPTIONS, "run-id": { type: "string" }, limit: { type: "string" } });
  if (values.help) {
    process.stdout.write(OPERATIONS_USAGE);
    return 0;
  }
  const runId = required(values["run-id"], "--run-id");
  const limit = values.limit === undefined ? Infinity : Number(values.limit);
  if (!(limit === Infinity || (Number.isInteger(limit) && limit > 0))) throw new UsageError("--limit must be a positive whole number");
  const { client } = connect(values);
  const all: OperationView[] = [];
  let cursor: string | null = null;
  do {
    const page = Math.min(200, limit - all.length);
    const q: string = `run_id=${encodeURIComponent(runId)}&limit=${page}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
    const res = await client.get<OperationPage>(`/operations?${q}`);
    all.push(...(res.body.data ?? []));
    cursor = res.body.next_cursor ?? null;
  } while (cursor && all.length < limit);
  process.stdout.write(`${JSON.stringify(all, null, 2)}\n`);
  return 0;
}

async function logs(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, { ...CONNECTION_OPTIONS, follow: { type: "boolean", short: "f" } }, "any");
  if (values.help) {
    process.stdout.write(OPERATIONS_USAGE);
    return 0;
  }
  const id = oneId(positionals);
  const { client, sink } = connect(values);
  const printer = new OutputPrinter(sink);
  if (values.follow) {
    const final = await followOperation(client, id, printer);
    const outcome = outcomeOf(final);
    sink.note(outcome.summary);
    return outcome.exitCode;
  }
  const op = await getOperation(client, id);
  printer.rest(op);
  if (op.status === "running") sink.note(`operation ${id} is still running; its output is shown when it ends (use --follow to stream it)`);
  return 0;
}
