import { JobCatalog, JobName, Limits } from "@runbridge/contracts";
import { gatewayEnvSchema } from "../../apps/gateway/src/config";

/**
 * A delivery job must not run out of attempts while its operation may still be
 * delivered: a job BullMQ gave up on is taken by the sweeper for a lost one
 * (an operation with env is then failed as "queue lost ... nothing ran").
 */
describe("the delivery job's retries", () => {
  const { attempts, backoff } = JobCatalog[JobName.DeliverOperation].options;

  it("outlast the longest delivery window the gateway can be configured with, plus the longest run", () => {
    // An attempt against an absent runner fails at once: retries come one backoff apart.
    const retryWindowSeconds = (attempts * backoff.delay) / 1000;
    expect(retryWindowSeconds).toBeGreaterThanOrEqual(Limits.deliveryTimeoutMaxSeconds + Limits.timeoutMaxSeconds);
  });

  it("the gateway's RUNNER_DELIVERY_TIMEOUT_SECONDS stops at that limit", () => {
    const max = gatewayEnvSchema.extract("RUNNER_DELIVERY_TIMEOUT_SECONDS").validate(Limits.deliveryTimeoutMaxSeconds + 1);
    expect(max.error?.message).toMatch(/less than or equal to 3600/);
  });
});
