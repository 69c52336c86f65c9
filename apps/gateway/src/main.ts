import { once } from "node:events";
import { Shutdown } from "@runbridge/common";
import { buildGatewayContext } from "./bootstrap";
import { loadGatewayConfig } from "./config";
import { createGatewayServer } from "./server";

async function main(): Promise<void> {
  // Configuration is checked before any connection is opened.
  const config = loadGatewayConfig();
  const ctx = await buildGatewayContext(config);
  const server = createGatewayServer(ctx, config);
  server.listen(config.PORT, config.HOST);
  await once(server, "listening");
  ctx.logger.info("gateway listening", { port: config.PORT, host: config.HOST });

  new Shutdown(ctx.logger, (config.EXEC_MAX_WAIT_SECONDS + 5) * 1000)
    .add(
      "stop accepting, answer held requests, end log streams, drain",
      () =>
        new Promise<void>((resolve) => {
          // A connection kept alive after its last answer would hold the close for keepAliveTimeout.
          const idle = setInterval(() => server.closeIdleConnections(), 100);
          server.close(() => {
            clearInterval(idle);
            resolve();
          });
          ctx.startDraining();
        }),
    )
    .add("close connections", () => ctx.close())
    .listen();
}

main().catch((err: unknown) => {
  process.stderr.write(`gateway failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
