import type net from "node:net";
import { UpstreamProxy } from "./upstream-proxy";

/**
 * A TCP proxy in front of one server (Redis or PostgreSQL, in the tests) that
 * can lose a reply: once armed, the first request containing `marker` goes
 * through to the server, its reply — and everything after it on that
 * connection — is swallowed, and after `holdMs` every connection through the
 * proxy is cut and new ones refused. A client then sees its command fail
 * although the server ran it, and cannot reach the server again, as when a
 * network path dies between a write and its answer.
 */
export class ReplyDropProxy extends UpstreamProxy {
  private armed: { marker: string; holdMs: number } | null = null;
  private refusing = false;
  /** One per armed marker that went through: a suite may arm several in turn. */
  private readonly cuts = new Set<NodeJS.Timeout>();
  /** Set once an armed marker went through: the server has the command. */
  delivered = false;

  arm(marker: string, holdMs: number): void {
    this.armed = { marker, holdMs };
  }

  protected accept(client: net.Socket): void {
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = this.connectUpstream(client);
    let swallowing = false;
    client.on("data", (chunk: Buffer) => {
      upstream.write(chunk);
      const armed = this.armed;
      if (!armed || !chunk.includes(armed.marker)) return;
      this.armed = null;
      this.delivered = true;
      swallowing = true;
      const cut = setTimeout(() => {
        this.cuts.delete(cut);
        // Stops listening: reconnects are refused outright (ECONNREFUSED), as from a dead path.
        this.refusing = true;
        this.server?.close();
        for (const s of this.sockets) s.destroy();
        this.sockets.clear();
      }, armed.holdMs);
      this.cuts.add(cut);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!swallowing) client.write(chunk);
    });
  }

  override async close(): Promise<void> {
    for (const cut of this.cuts) clearTimeout(cut);
    this.cuts.clear();
    this.refusing = true;
    await super.close();
  }
}
