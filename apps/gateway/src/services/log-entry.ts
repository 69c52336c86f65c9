/** One chunk of an operation's live output, as the dispatcher appends it to the operation's Redis stream. */
export interface LogEntry {
  stream: "stdout" | "stderr";
  /** Byte offset of `data` within its stream. */
  offset: number;
  data: string;
  /** Set on the one entry where the dispatcher cut the live log off at its size limit (it has no data). */
  cutOff?: { note: string; cutAt: number };
}

/** Reads a stream entry's flat field list (`[name, value, name, value, ...]`). */
export function parseLogEntry(fields: string[]): LogEntry {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i] ?? "", fields[i + 1] ?? "");
  const note = f.get("note");
  return {
    stream: f.get("stream") === "stderr" ? "stderr" : "stdout",
    offset: Number(f.get("offset") ?? 0),
    data: f.get("data") ?? "",
    ...(note !== undefined ? { cutOff: { note, cutAt: Number(f.get("cut_at") ?? 0) } } : {}),
  };
}
