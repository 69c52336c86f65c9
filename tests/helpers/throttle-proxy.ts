import type net from "node:net";
import { UpstreamProxy } from "./upstream-proxy";

const TICK_MS = 50;
/** What the proxy reads ahead of the throttle: more would hide the sender's own backlog in this process. */
const READ_AHEAD_BYTES = 64 * 1024;

/**
 * A TCP proxy whose client-to-upstream direction is throttled to `bytesPerSecond`, like a slow
 * uplink in front of a runner: it reads from the client only as fast as it forwards, so the
 * client's writes back up in the client (its socket's buffers, then its own). Answers from upstream
 * pass unthrottled.
 */
export class ThrottleProxy extends UpstreamProxy {
  /** Bytes forwarded upstream, over every connection. */
  forwarded = 0;

  constructor(
    upstreamPort: number,
    private readonly bytesPerSecond: number,
  ) {
    super(upstreamPort);
  }

  protected accept(client: net.Socket): void {
    const upstream = this.connectUpstream(client);
    upstream.pipe(client);
    const queue: Buffer[] = [];
    let queued = 0;
    client.on("data", (chunk: Buffer) => {
      queue.push(chunk);
      queued += chunk.length;
      if (queued >= READ_AHEAD_BYTES) client.pause();
    });
    const perTick = Math.max(1, Math.floor((this.bytesPerSecond * TICK_MS) / 1000));
    const timer = setInterval(() => {
      let allowance = perTick;
      while (allowance > 0 && queue.length > 0) {
        const head = queue[0] as Buffer;
        const part = head.length <= allowance ? head : head.subarray(0, allowance);
        if (part === head) queue.shift();
        else queue[0] = head.subarray(allowance);
        upstream.write(part);
        allowance -= part.length;
        queued -= part.length;
        this.forwarded += part.length;
      }
      if (queued < READ_AHEAD_BYTES && client.isPaused()) client.resume();
    }, TICK_MS);
    const stop = () => clearInterval(timer);
    client.on("close", stop);
    upstream.on("close", stop);
  }
}
