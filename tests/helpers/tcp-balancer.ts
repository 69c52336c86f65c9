import net from "node:net";
import { listenOnLoopback } from "./processes";

/**
 * A small TCP load balancer for tests: round-robin over backend ports,
 * skipping dead ones, like the load balancer in front of the dispatchers in
 * production. It can cut every connection and refuse new ones, to simulate a
 * network partition between runners and dispatchers.
 */
export class TcpBalancer {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private next = 0;
  refusing = false;
  port = 0;

  constructor(public backends: number[]) {}

  async listen(): Promise<number> {
    this.server = net.createServer((client) => this.accept(client));
    this.port = await listenOnLoopback(this.server);
    return this.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  private accept(client: net.Socket, tried = 0): void {
    if (this.refusing || this.backends.length === 0 || tried >= this.backends.length) {
      client.destroy();
      return;
    }
    const port = this.backends[this.next++ % this.backends.length] as number;
    const upstream = net.connect({ host: "127.0.0.1", port });
    let connected = false;
    upstream.once("connect", () => {
      connected = true;
      this.sockets.add(client).add(upstream);
      client.pipe(upstream).pipe(client);
    });
    upstream.on("error", () => {
      if (!connected) this.accept(client, tried + 1);
      else client.destroy();
    });
    client.on("error", () => upstream.destroy());
    client.on("close", () => {
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    });
    upstream.on("close", () => client.destroy());
  }

  /** Drops every open connection (the peers see a network failure). */
  cutAll(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
