import { Limits } from "@runbridge/contracts";
import type { Socket } from "socket.io-client";

type StreamName = "stdout" | "stderr";

/**
 * Live output is dropped, and results wait (Agent.pump), while the connection holds more than this
 * not yet handed to the kernel, for all operations together: everything else the runner sends
 * (heartbeat replies, start answers) queues behind it, and over a slow uplink the dispatcher drops a
 * runner whose heartbeat reply waits longer than its ping timeout (10 s); unbounded, it also grows
 * the runner's memory.
 */
export const CONNECTION_BACKLOG_MAX_BYTES = 1024 * 1024;

/**
 * Bytes socket.io holds for `socket`'s connection, not yet written to the kernel: packets engine.io
 * has not handed to its transport (writeBuffer) and what the WebSocket has queued (ws' bufferedAmount:
 * its net.Socket's pending writes). engine.io's websocket transport hands every packet to ws at once
 * and says it is writable again on the next tick, so writeBuffer alone is near empty however much
 * is waiting; ws' count is where the backlog is.
 */
export function transportBacklogBytes(socket: Socket): number {
  const engine = socket.io.engine as (typeof socket.io.engine | undefined);
  if (!engine) return 0;
  let bytes = 0;
  for (const packet of engine.writeBuffer) {
    const data: unknown = packet.data;
    if (typeof data === "string") bytes += Buffer.byteLength(data);
    else if (Buffer.isBuffer(data)) bytes += data.length;
  }
  // `ws` is protected in engine.io-client's types, and absent on a transport other than its websocket.
  const ws = (engine.transport as unknown as { ws?: { bufferedAmount?: unknown } } | undefined)?.ws;
  if (typeof ws?.bufferedAmount === "number") bytes += ws.bufferedAmount;
  return bytes;
}

/**
 * What a chunk's data costs on the wire: socket.io sends it as JSON, where a NUL byte is `\u0000`
 * (6 bytes) and a newline `\n` (2), so the decoded text's length understates it up to six times.
 */
function wireBytes(data: string): number {
  return Buffer.byteLength(JSON.stringify(data));
}

export interface LiveOutputLink {
  /** Sends one chunk (`data` may be empty: a mark that the stream has reached `offset`). */
  send(stream: StreamName, offset: number, data: string): void;
  /** The connection's backlog in bytes (transportBacklogBytes), or null while it is not connected. */
  backlog(): number | null;
}

/**
 * One operation's live output. Chunks go out until Limits.liveLogMaxBytes of them, counted as
 * they cross the wire, have gone (and the chunk that crosses it: the dispatcher, which charges more
 * than the text per chunk, has then usually marked its cut-off); a chunk is dropped while the
 * connection's backlog is over CONNECTION_BACKLOG_MAX_BYTES. Dropping never needs a new message:
 * offsets are byte positions in the stream, so the next chunk sent starts past the last one and
 * clients (the CLI, the Action, the dashboard) show the gap and fill it from the stored result.
 */
export class LiveOutput {
  private spent = 0;
  /** Where each stream has reached (what the command printed), and where what was sent of it ends. */
  private readonly printed: Record<StreamName, number> = { stdout: 0, stderr: 0 };
  private readonly sent: Record<StreamName, number> = { stdout: 0, stderr: 0 };

  constructor(private readonly link: LiveOutputLink) {}

  push(stream: StreamName, data: string, offset: number): void {
    const end = offset + Buffer.byteLength(data);
    this.printed[stream] = end;
    if (this.spent > Limits.liveLogMaxBytes) return;
    const backlog = this.link.backlog();
    if (backlog === null || backlog > CONNECTION_BACKLOG_MAX_BYTES) return;
    this.spent += wireBytes(data);
    this.link.send(stream, offset, data);
    this.sent[stream] = end;
  }

  /**
   * The command's output has ended. A stream whose last bytes were dropped gets an empty chunk at its
   * end, so that the gap shows there too: without it a client sees live output that simply stops, no
   * cut-off note when the budget (counted on the wire) ran out before the dispatcher's, and would
   * take it for the whole output, never printing the stored end. False while not connected: the
   * caller sends it once connected again, before the result (Agent).
   */
  end(): boolean {
    if (this.link.backlog() === null) return false;
    for (const stream of ["stdout", "stderr"] as const) {
      if (this.printed[stream] <= this.sent[stream]) continue;
      this.link.send(stream, this.printed[stream], "");
      this.sent[stream] = this.printed[stream];
    }
    return true;
  }
}
