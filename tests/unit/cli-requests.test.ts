import { deployRequest, execRequest, rebootRequest, registryLoginRequest, registryLogoutRequest, restartRequest, seconds } from "../../apps/cli/src/client/requests";
import { heldForMs } from "../../apps/cli/src/client/submit";

/**
 * The request bodies the CLI and the GitHub Action send (both build them
 * here). Field names and the leaving-out of unset options are the Automation
 * API's contract; the serialised form is pinned, key order included.
 */
describe("CLI and Action request builders", () => {
  const json = (r: { path: string; body: unknown }) => `${r.path} ${JSON.stringify(r.body)}`;

  it("leave out what is not set", () => {
    expect(json(execRequest({ serverId: "s", command: "true" }))).toBe('/exec {"server_id":"s","command":"true"}');
    expect(json(execRequest({ serverId: "s", command: "true", env: {} }))).toBe('/exec {"server_id":"s","command":"true"}');
    expect(json(deployRequest({ applicationId: "a" }))).toBe('/deploy {"application_id":"a"}');
    expect(json(restartRequest({ serverId: "s", container: "web" }))).toBe('/restart {"server_id":"s","container_name":"web"}');
  });

  it("send every option that is set, under the API's names", () => {
    expect(json(execRequest({ serverId: "s", command: "ls", cwd: "/srv", env: { A: "1" }, timeout: 30 }))).toBe(
      '/exec {"server_id":"s","command":"ls","working_directory":"/srv","env":{"A":"1"},"timeout_seconds":30}',
    );
    expect(json(deployRequest({ applicationId: "a", ref: "v1", env: { B: "2" }, timeout: 600 }))).toBe(
      '/deploy {"application_id":"a","commit_ref":"v1","env_overrides":{"B":"2"},"timeout_seconds":600}',
    );
    expect(json(restartRequest({ serverId: "s", container: "web", timeout: 5 }))).toBe('/restart {"server_id":"s","container_name":"web","timeout_seconds":5}');
    expect(json(rebootRequest("s"))).toBe('/reboot {"server_id":"s"}');
    expect(json(registryLoginRequest("s", "c"))).toBe('/registry-auth/login {"server_id":"s","credential_id":"c"}');
    expect(json(registryLogoutRequest("s", "ghcr.io"))).toBe('/registry-auth/logout {"server_id":"s","registry_url":"ghcr.io"}');
  });

  it("take timeouts as whole seconds, and say which setting was wrong", () => {
    expect(seconds(undefined)).toBeUndefined();
    expect(seconds(" 45 ")).toBe(45);
    expect(() => seconds("1.5")).toThrow('--timeout must be a whole number of seconds, got "1.5"');
    expect(() => seconds("5m", "timeout")).toThrow('timeout must be a whole number of seconds, got "5m"');
  });

  it("wait for a held answer only on the endpoints the gateway holds, as long as the command may run, up to 60 s", () => {
    expect(heldForMs(execRequest({ serverId: "s", command: "true", timeout: 10 }))).toBe(13_000);
    expect(heldForMs(execRequest({ serverId: "s", command: "true" }))).toBe(60_000);
    expect(heldForMs(restartRequest({ serverId: "s", container: "web", timeout: 900 }))).toBe(60_000);
    expect(heldForMs(registryLogoutRequest("s", "ghcr.io"))).toBe(60_000);
    for (const answeredAtOnce of [deployRequest({ applicationId: "a", timeout: 600 }), rebootRequest("s"), registryLoginRequest("s", "c")]) expect(heldForMs(answeredAtOnce)).toBe(0);
  });
});
