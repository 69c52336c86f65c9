import { execFileSync } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "./processes";

/**
 * Redis and PostgreSQL processes of one test file, on their own ports, so the
 * test can stop and restart them without touching the shared services
 * (recipes from the environment notes; initdb refuses root, so PostgreSQL runs
 * as the postgres user).
 */
/**
 * A port that was free when picked can be taken by another test worker
 * before the server binds it: then the start is tried again on another port.
 */
async function onFreePort<T>(make: (port: number) => T, up: (service: T) => void): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const service = make(await freePort());
    try {
      up(service);
      return service;
    } catch (err) {
      if (attempt >= 3) throw err;
    }
  }
}

export class PrivateRedis {
  private constructor(
    readonly port: number,
    /** Its working directory: also how it is told apart from another server on the same port. */
    private readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(): Promise<PrivateRedis> {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-redis-"));
    return onFreePort(
      (port) => new PrivateRedis(port, dir),
      (r) => r.up(),
    );
  }

  up(): void {
    const args = ["--port", String(this.port), "--bind", "127.0.0.1", "--daemonize", "yes", "--save", "", "--appendonly", "no", "--dir", this.dir];
    execFileSync("redis-server", args, { stdio: "pipe" });
    for (let i = 0; i < 100; i++) {
      let dir: string | null = null;
      try {
        dir = execFileSync("redis-cli", ["-p", String(this.port), "config", "get", "dir"], { stdio: "pipe" }).toString();
      } catch {
        // not listening yet
      }
      // Ours, not another server that took the port first: the same working directory.
      if (dir !== null) {
        if (dir.includes(this.dir)) return;
        throw new Error(`another server answers on port ${this.port}`);
      }
      execFileSync("sleep", ["0.05"]);
    }
    throw new Error(`private redis on ${this.port} did not start`);
  }

  down(): void {
    try {
      execFileSync("redis-cli", ["-p", String(this.port), "shutdown", "nosave"], { stdio: "pipe" });
    } catch {
      // already down: the connection closes as it shuts down
    }
  }
}

const PG_BIN = "/usr/lib/postgresql/15/bin";

export class PrivatePostgres {
  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  get url(): string {
    return `postgresql://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async start(): Promise<PrivatePostgres> {
    const dir = mkdtempSync(path.join(tmpdir(), "rb-pg-"));
    chownSync(dir, ...ids("postgres"));
    asPostgres(`${PG_BIN}/initdb -D ${dir}/data -A trust -U postgres`);
    // pg_ctl -w fails when the port is taken, and the start is tried on another one.
    return onFreePort(
      (port) => new PrivatePostgres(port, dir),
      (pg) => pg.up(),
    );
  }

  up(): void {
    asPostgres(`${PG_BIN}/pg_ctl -D ${this.dir}/data -o '-p ${this.port} -k ${this.dir} -c fsync=off -c listen_addresses=127.0.0.1' -l ${this.dir}/log -w start`);
  }

  down(): void {
    asPostgres(`${PG_BIN}/pg_ctl -D ${this.dir}/data -m fast -w stop`);
  }

  destroy(): void {
    try {
      this.down();
    } catch {
      // already stopped
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function asPostgres(cmd: string): void {
  execFileSync("su", ["postgres", "-c", cmd], { stdio: "pipe" });
}

function ids(user: string): [number, number] {
  const uid = Number(execFileSync("id", ["-u", user]).toString().trim());
  const gid = Number(execFileSync("id", ["-g", user]).toString().trim());
  return [uid, gid];
}
