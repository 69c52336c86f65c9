import type net from "node:net";
import { UpstreamProxy } from "./upstream-proxy";

/**
 * A TCP proxy in front of one server (PostgreSQL, in the tests) that can hold
 * back the answers to chosen requests: once `hold(markers)` is called, a
 * connection that sends a request containing one of the markers gets nothing
 * more from the server until `release()` — it waits on its query as on a
 * server slow to answer — while every other connection goes on as usual.
 */
export class HoldingProxy extends UpstreamProxy {
  private readonly waiting: (() => void)[] = [];
  private markers: string[] = [];
  /** Requests seen with a held marker. */
  heldRequests = 0;

  hold(markers: string[]): void {
    this.markers = markers;
  }

  release(): void {
    this.markers = [];
    for (const deliver of this.waiting.splice(0)) deliver();
  }

  protected accept(client: net.Socket): void {
    const upstream = this.connectUpstream(client);
    let holding = false;
    client.on("data", (chunk: Buffer) => {
      const text = chunk.toString("latin1");
      if (this.markers.some((m) => text.includes(m))) {
        holding = true;
        this.heldRequests++;
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (holding && this.markers.length > 0) this.waiting.push(() => client.write(chunk));
      else {
        holding = false;
        client.write(chunk);
      }
    });
  }
}
