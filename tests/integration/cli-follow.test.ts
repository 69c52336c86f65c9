import http from "node:http";
import { waitFor } from "../helpers/processes";
import { useStackWithRunner } from "../helpers/suite";
import { baseEnv, cli } from "./cli-process";

/**
 * The CLI follows an operation's live output when the gateway lets it; when
 * the key already holds every live stream the gateway allows (429), it waits
 * for the result instead of waiting out the refusals.
 */
describe("CLI: following without a live stream", () => {
  const suite = useStackWithRunner({ gateway: { LOGS_MAX_STREAMS_PER_KEY: "1" } });

  it("prints the result when the key's only live-stream slot is taken", async () => {
    const { stack, fx } = suite;
    const auth = { Authorization: `Bearer ${fx.token}` };
    // Another operation of the same key, followed live: it holds the one slot.
    const other = stack.api().post("/api/automation/v1/exec").set(auth).send({ server_id: fx.server.id, command: "sleep 20", timeout_seconds: 60 });
    const pending = other.then((r) => r);
    const otherId = await waitFor(async () => {
      const list = await stack.api().get("/api/automation/v1/operations").set(auth);
      return (list.body.data as { operation_id: string; status: string }[] | undefined)?.find((o) => o.status === "running")?.operation_id;
    }, 10_000, "the other operation to run");
    const holder = http.get(`${stack.url}/api/automation/v1/operations/${otherId}/logs`, { headers: { ...auth, Accept: "text/event-stream" } });
    const held = await new Promise<http.IncomingMessage>((resolve, reject) => holder.once("response", resolve).once("error", reject));
    expect(held.statusCode).toBe(200);
    try {
      const started = Date.now();
      const r = await cli(["exec", "--server", fx.server.id, "--", "sleep 1.5; echo followed"], baseEnv({ RUNBRIDGE_URL: stack.url, RUNBRIDGE_API_KEY: fx.token }));
      expect(r.code).toBe(0);
      expect(r.stdout).toBe("followed\n");
      expect(r.stderr).toMatch(/live output is not available now \(HTTP 429\)/);
      // Not the ten-second Retry-After the refusal carries.
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      holder.destroy();
      await pending;
    }
  });
});
