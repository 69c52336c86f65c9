import { deployRequestSchema, registryLogoutRequestSchema, restartRequestSchema, VALIDATION_OPTIONS } from "@runbridge/contracts";

/**
 * The Automation API's optional fields take `null` as "not sent": clients that serialise every
 * field (Python's None, an unset template variable) send them so. Through the same options the
 * gateway validates with.
 */
describe("optional request fields sent as null", () => {
  const id = "6f1c3a52-51a4-4b8e-9a4c-1d2e3f405162";

  it("deploy: commit_ref, env_overrides, timeout_seconds, run_id, run_context", () => {
    const { error, value } = deployRequestSchema.validate(
      { application_id: id, commit_ref: null, env_overrides: null, timeout_seconds: null, run_id: null, run_context: null },
      VALIDATION_OPTIONS,
    );
    expect(error).toBeUndefined();
    expect(value).toEqual({ application_id: id, timeout_seconds: 60 });
  });

  it("restart and registry logout: timeout_seconds, run_id, run_context", () => {
    expect(restartRequestSchema.validate({ server_id: id, container_name: "web", timeout_seconds: null, run_id: null }, VALIDATION_OPTIONS)).toEqual({
      value: { server_id: id, container_name: "web", timeout_seconds: 60 },
    });
    expect(registryLogoutRequestSchema.validate({ server_id: id, registry_url: "ghcr.io", run_context: null }, VALIDATION_OPTIONS)).toEqual({
      value: { server_id: id, registry_url: "ghcr.io" },
    });
  });

  it("a required field sent as null is still refused", () => {
    expect(deployRequestSchema.validate({ application_id: null }, VALIDATION_OPTIONS).error?.message).toMatch(/"application_id" must be a string/);
    expect(restartRequestSchema.validate({ server_id: id, container_name: null }, VALIDATION_OPTIONS).error?.message).toMatch(/"container_name" must be a string/);
  });
});
