import { execFileSync } from "node:child_process";
import { testDatabaseUrl } from "./env";
import type { TestStack } from "./stack";

/**
 * Where a secret was found at rest or in logs: the test database as a backup
 * would hold it (pg_dump --data-only), every Redis key and value under the
 * stack's prefix (queue jobs included), and every process's output.
 * Empty = nowhere.
 */
export async function findLeaks(stack: TestStack, secret: string): Promise<string[]> {
  const found: string[] = [];
  const dump = execFileSync("pg_dump", ["--data-only", testDatabaseUrl()], { maxBuffer: 512 * 1024 * 1024 }).toString();
  if (dump.includes(secret)) found.push("postgres dump");
  const keys = await stack.redis.keys(`${stack.prefix}:*`);
  for (const k of keys) {
    const type = await stack.redis.type(k);
    let content = k;
    if (type === "string") content += (await stack.redis.get(k)) ?? "";
    else if (type === "hash") content += JSON.stringify(await stack.redis.hgetall(k));
    else if (type === "list") content += JSON.stringify(await stack.redis.lrange(k, 0, -1));
    else if (type === "set") content += JSON.stringify(await stack.redis.smembers(k));
    else if (type === "zset") content += JSON.stringify(await stack.redis.zrange(k, 0, -1));
    else if (type === "stream") content += JSON.stringify(await stack.redis.xrange(k, "-", "+"));
    if (content.includes(secret)) found.push(`redis ${k}`);
  }
  if (stack.allLogs().includes(secret)) found.push("process logs");
  return found;
}
