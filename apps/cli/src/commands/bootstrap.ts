import Joi from "joi";
import { TokenKind, displayPrefix, generateToken, hashToken, parseConfig, commonEnv } from "@runbridge/common";
import { createPrisma } from "@runbridge/db";

const envSchema = Joi.object({ DATABASE_URL: commonEnv.DATABASE_URL });

/**
 * `runbridge bootstrap --tenant NAME`: creates a tenant and its first general
 * API key, and prints one JSON line `{"tenant_id", "api_key"}`. The key is
 * shown only here.
 */
export async function bootstrap(args: string[]): Promise<number> {
  const i = args.indexOf("--tenant");
  const name = i >= 0 ? args[i + 1] : undefined;
  if (!name || !name.trim()) {
    process.stderr.write("usage: runbridge bootstrap --tenant NAME\n");
    return 2;
  }
  const { DATABASE_URL } = parseConfig<{ DATABASE_URL: string }>("runbridge bootstrap", envSchema, process.env);
  const prisma = createPrisma(DATABASE_URL, { max: 2 });
  try {
    const apiKey = generateToken(TokenKind.ApiKey);
    const tenant = await prisma.tenant.create({
      data: { name: name.trim(), apiKeys: { create: { name: "bootstrap", keyHash: hashToken(apiKey), prefix: displayPrefix(apiKey) } } },
    });
    process.stdout.write(`${JSON.stringify({ tenant_id: tenant.id, api_key: apiKey })}\n`);
    return 0;
  } finally {
    await prisma.$disconnect();
  }
}
