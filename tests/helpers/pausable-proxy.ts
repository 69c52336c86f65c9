import type net from "node:net";
import { UpstreamProxy } from "./upstream-proxy";

/**
 * A TCP proxy in front of one server (a dispatcher, for a runner) that can cut its link: while paused,
 * every connection through it is dropped and new ones are closed at once, as during a network outage;
 * resumed, connections pass again.
 */
export class PausableProxy extends UpstreamProxy {
  private paused = false;

  pause(): void {
    this.paused = true;
    for (const s of this.sockets) s.destroy();
  }

  resume(): void {
    this.paused = false;
  }

  protected accept(client: net.Socket): void {
    if (this.paused) {
      client.destroy();
      return;
    }
    const upstream = this.connectUpstream(client);
    client.pipe(upstream);
    upstream.pipe(client);
  }
}
