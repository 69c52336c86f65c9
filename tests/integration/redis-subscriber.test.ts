import { createSubscriber } from "@runbridge/common";
import { testRedisUrl } from "../helpers/env";

/**
 * A subscription made at any moment of a connection's start holds: with ioredis's ready check, a
 * SUBSCRIBE written between the TCP connection and the check's INFO had the INFO refused and the
 * connection dropped and made again (a dispatcher's relay deaf for a while after boot).
 */
describe("a Redis connection for subscriptions", () => {
  it("subscribes at any moment of its start without being dropped", async () => {
    const errors: string[] = [];
    // A quarter of a millisecond apart across the first 10 ms: the window was 1.5–4.5 ms wide here.
    for (let step = 0; step < 40; step++) {
      const sub = createSubscriber(testRedisUrl());
      sub.on("error", (err: Error) => errors.push(`${step / 4} ms: ${err.message}`));
      try {
        await new Promise((resolve) => setTimeout(resolve, step / 4));
        await sub.subscribe("rb-test-subscriber-a", "rb-test-subscriber-b");
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(sub.status).toBe("ready");
      } finally {
        sub.disconnect();
      }
    }
    expect(errors).toEqual([]);
  });
});
