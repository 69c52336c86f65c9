/** One chunk of an operation's live output, as the dispatcher appends it to the operation's Redis stream. */
export interface LogEntry {
  stream: "stdout" | "stderr";
  /** Byte offset of `data` within its stream. */
  offset: number;
  data: string;
}

/** Reads a stream entry's flat field list (`[name, value, name, value, ...]`). */
export function parseLogEntry(fields: string[]): LogEntry {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] ?? "", fields[i + 1] ?? "");
  return { stream: f.get("stream") === "stderr" ? "stderr" : "stdout", offset: Number(f.get("offset") ?? 0), data: f.get("data") ?? "" };
}
