import http from "node:http";

export interface Reply {
  status: number;
  body: string;
}

/**
 * A small keep-alive JSON client on node:http, so every measured request
 * reuses a warm TCP connection as a CI client with a pooled agent would.
 */
export class HttpClient {
  private readonly agent: http.Agent;
  private readonly url: URL;

  constructor(baseUrl: string, maxSockets = 64) {
    this.url = new URL(baseUrl);
    this.agent = new http.Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets });
  }

  request(method: string, path: string, token: string, body?: unknown): Promise<Reply> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: this.url.hostname,
          port: this.url.port,
          method,
          path,
          agent: this.agent,
          headers: {
            Authorization: `Bearer ${token}`,
            ...(payload ? { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(payload) } : {}),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
  }

  async json<T>(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
    const r = await this.request(method, path, token, body);
    return { status: r.status, body: JSON.parse(r.body) as T };
  }

  close(): void {
    this.agent.destroy();
  }
}
