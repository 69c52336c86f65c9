/**
 * A child process holding many simulated runners: socket.io clients that
 * authenticate with a runner token exactly as the runner agent does, then sit
 * idle (answering the dispatcher's pings). Started by sim-runners.ts over IPC.
 */
import { io, type Socket } from "socket.io-client";
import { SocketPath } from "@runbridge/contracts";

interface ConnectOrder {
  url: string;
  tokens: string[];
  perSecond: number;
}

const sockets: Socket[] = [];
let connected = 0;
let errors = 0;
/** Connection errors by reason (socket.io's message plus the transport's own cause). */
const reasons: Record<string, number> = {};

function reasonOf(err: Error): string {
  const d = (err as { description?: unknown }).description;
  const cause = d instanceof Error ? d.message : d && typeof d === "object" && "message" in d ? String(d.message) : "";
  return cause ? `${err.message}: ${cause}` : err.message;
}

function report(): void {
  process.send?.({ connected, errors, reasons, total: sockets.length });
}

async function connectAll(order: ConnectOrder): Promise<void> {
  const gapMs = 1000 / order.perSecond;
  const t0 = Date.now();
  for (let i = 0; i < order.tokens.length; i++) {
    const socket = io(order.url, {
      path: SocketPath,
      transports: ["websocket"],
      auth: { token: order.tokens[i], version: "bench-sim" },
      // One connection per simulated runner, as separate machines would have.
      forceNew: true,
      reconnection: true,
      reconnectionDelay: 1000,
      reconnectionDelayMax: 5000,
      randomizationFactor: 0.5,
      timeout: 20_000,
    });
    socket.on("connect", () => {
      connected++;
    });
    socket.on("disconnect", () => {
      connected--;
    });
    socket.on("connect_error", (err) => {
      errors++;
      lastTry.set(socket, Date.now());
      const reason = reasonOf(err).slice(0, 120);
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      // A handshake the dispatcher refused (throttled: more first-time tokens from this one address in flight
      // than its per-minute lookup budget) ends socket.io's own reconnection: tried again, as the real runner does.
      if (!socket.active) setTimeout(() => socket.connect(), 1000 + Math.random() * 1000).unref();
    });
    // Never expected; a simulated runner refuses work so nothing waits on it.
    socket.on("operation:start", (_op: unknown, ack?: (r: unknown) => void) => ack?.({ ok: false, error: "simulated runner" }));
    sockets.push(socket);
    lastTry.set(socket, Date.now());
    // Paced against the clock, so a slow event loop does not burst afterwards.
    const due = t0 + (i + 1) * gapMs;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

/** When each simulated runner last started or failed a connection attempt. */
const lastTry = new WeakMap<Socket, number>();
/** Longer than a connection attempt may take (the client's 20 s `timeout`, then its reconnection backoff of up to 5 s). */
const STUCK_AFTER_MS = 30_000;

/**
 * One that is neither connected nor trying (seen in a run on a slow instance: 6 of 1,000 runners, while the dispatcher
 * closed the oldest of too many unauthenticated connections from this one address and throttled its unknown tokens,
 * stopped retrying), or whose attempt has gone quiet for longer than any attempt takes, is started afresh — as a real
 * runner, which keeps trying for as long as it runs.
 */
function restartStuck(): void {
  const now = Date.now();
  for (const socket of sockets) {
    if (socket.connected) continue;
    const quietFor = now - (lastTry.get(socket) ?? now);
    if (socket.active && quietFor < STUCK_AFTER_MS) continue;
    if (!socket.active && quietFor < 3_000) continue; // its own retry is due (connect_error above)
    lastTry.set(socket, now);
    socket.disconnect().connect();
  }
}

process.on("message", (msg) => {
  void connectAll(msg as ConnectOrder);
});
setInterval(restartStuck, 5_000);
setInterval(report, 500);
process.on("SIGTERM", () => {
  for (const s of sockets) s.disconnect();
  setTimeout(() => process.exit(0), 200);
});
process.on("disconnect", () => process.exit(0));
