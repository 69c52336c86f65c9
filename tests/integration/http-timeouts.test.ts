import net from "node:net";
import { useStackWithRunner } from "../helpers/suite";

interface RawConnection {
  socket: net.Socket;
  received: () => string;
  /** Resolves with the milliseconds from opening to the server closing the connection. */
  closed: Promise<number>;
}

function connect(port: number): RawConnection {
  const socket = net.connect(port, "127.0.0.1");
  const opened = performance.now();
  let text = "";
  socket.on("data", (chunk: Buffer) => void (text += chunk.toString("latin1")));
  socket.on("error", () => undefined);
  const closed = new Promise<number>((resolve) => socket.on("close", () => resolve(performance.now() - opened)));
  return { socket, received: () => text, closed };
}

/** Writes `pieces` one every `everyMs` while the connection is open; stops at the first refused write. */
function trickle(conn: RawConnection, pieces: string[], everyMs: number): void {
  let i = 0;
  const timer = setInterval(() => {
    if (i >= pieces.length || conn.socket.destroyed) return clearInterval(timer);
    conn.socket.write(pieces[i++] ?? "");
  }, everyMs);
  void conn.closed.then(() => clearInterval(timer));
}

/** The milliseconds from opening to the server closing the connection, which it must close with a 408. */
async function closedWith408(conn: RawConnection): Promise<number> {
  const ms = await conn.closed;
  expect(conn.received()).toMatch(/^HTTP\/1\.1 408 /);
  return ms;
}

function portOf(url: string): number {
  return Number(new URL(url).port);
}

describe("receiving a request is bounded; holding its answer is not", () => {
  const suite = useStackWithRunner({ gateway: { HTTP_HEADERS_TIMEOUT_SECONDS: "2", HTTP_REQUEST_TIMEOUT_SECONDS: "4", EXEC_MAX_WAIT_SECONDS: "20" } });

  it("answers 408 and closes a connection whose headers trickle in past HTTP_HEADERS_TIMEOUT_SECONDS", async () => {
    const conn = connect(portOf(suite.stack.url));
    conn.socket.write("POST /api/automation/v1/exec HTTP/1.1\r\nHost: x\r\n");
    // A header line every 300 ms, for a minute: each byte keeps an idle-socket timeout from firing.
    trickle(conn, Array.from({ length: 200 }, (_, i) => `X-Slow-${i}: y\r\n`), 300);
    const ms = await closedWith408(conn);
    // 2 s, then up to the 1 s between checks (Node's default check, every 30 s, would let it run past 30 s).
    expect(ms).toBeGreaterThanOrEqual(1_900);
    expect(ms).toBeLessThan(5_000);
  }, 20_000);

  it("answers 408 and closes a connection whose body trickles in past HTTP_REQUEST_TIMEOUT_SECONDS", async () => {
    const body = JSON.stringify({ server_id: suite.fx.server.id, command: "true" });
    const conn = connect(portOf(suite.stack.url));
    conn.socket.write(
      `POST /api/automation/v1/exec HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${suite.fx.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    trickle(conn, [...body], 300);
    const ms = await closedWith408(conn);
    expect(ms).toBeGreaterThanOrEqual(3_900);
    expect(ms).toBeLessThan(7_000);
  }, 20_000);

  it("holds an exec well past HTTP_REQUEST_TIMEOUT_SECONDS, and a keep-alive connection idles past both", async () => {
    const conn = connect(portOf(suite.stack.url));
    const send = (command: string) => {
      const body = JSON.stringify({ server_id: suite.fx.server.id, command, timeout_seconds: 30 });
      conn.socket.write(
        `POST /api/automation/v1/exec HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${suite.fx.token}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
    };
    const answered = async (count: number) => {
      for (let waited = 0; waited < 30_000; waited += 50) {
        if ((conn.received().match(/"status":"completed"/g) ?? []).length >= count) return;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`no ${count}th completed answer; received: ${conn.received().slice(0, 500)}`);
    };
    const started = performance.now();
    send("sleep 6; echo held");
    await answered(1);
    expect(performance.now() - started).toBeGreaterThan(5_500);
    expect(conn.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(conn.received()).toContain("held");
    // Idle on the same connection for longer than the headers timeout, then a second request.
    await new Promise((r) => setTimeout(r, 3_000));
    expect(conn.socket.destroyed).toBe(false);
    send("echo again");
    await answered(2);
    expect(conn.received()).toContain("again");
    expect(conn.received()).not.toContain(" 408 ");
    conn.socket.destroy();
  }, 60_000);

  it("closes a runner connection whose upgrade request trickles in, within seconds, on the dispatcher", async () => {
    const port = suite.stack.dispatcherPorts[0];
    if (port === undefined) throw new Error("the stack has no dispatcher");
    const conn = connect(port);
    conn.socket.write("GET /runner/?EIO=4&transport=websocket HTTP/1.1\r\nHost: x\r\n");
    trickle(conn, Array.from({ length: 400 }, (_, i) => `X-Slow-${i}: y\r\n`), 300);
    const ms = await closedWith408(conn);
    // 10 s for the headers, checked every second (Node's default: 60 s, checked every 30 s).
    expect(ms).toBeLessThan(13_000);
  }, 30_000);
});
