import net from "node:net";
import { listenOnLoopback } from "./processes";

/**
 * A TCP proxy on loopback in front of one upstream server (Redis or
 * PostgreSQL, in the tests); subclasses decide what passes (accept).
 */
export abstract class UpstreamProxy {
  protected server: net.Server | null = null;
  protected readonly sockets = new Set<net.Socket>();
  port = 0;

  constructor(private readonly upstreamPort: number) {}

  async listen(): Promise<number> {
    this.server = net.createServer((client) => this.accept(client));
    this.port = await listenOnLoopback(this.server);
    return this.port;
  }

  protected abstract accept(client: net.Socket): void;

  /** Drops every connection and stops listening (if it still is). */
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The upstream connection for `client`, both kept in `sockets` until either ends, when both are closed. */
  protected connectUpstream(client: net.Socket): net.Socket {
    const upstream = net.connect({ host: "127.0.0.1", port: this.upstreamPort });
    this.sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
    return upstream;
  }
}
