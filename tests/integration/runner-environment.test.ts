import { userInfo } from "node:os";
import { createFixture } from "../helpers/factories";
import type { TestStack } from "../helpers/stack";
import { useStack } from "../helpers/suite";

/** What a command learns of the runner that started it, and what it is given: as a deploy script would use them. */
describe("the runner as its commands see it", () => {
  const suite = useStack();
  let stack: TestStack;
  beforeAll(() => {
    ({ stack } = suite);
  });

  async function run(env: Record<string, string | undefined>, command: string): Promise<string> {
    const fx = await createFixture();
    await stack.startRunner(fx.runnerToken, fx.server.id, { env });
    const res = await stack.api().post("/api/automation/v1/exec").set("Authorization", `Bearer ${fx.token}`).send({ server_id: fx.server.id, command });
    expect(res.body).toMatchObject({ status: "completed", exit_code: 0 });
    return res.body.stdout as string;
  }

  it("is not a `node` process to pkill or killall, which deploy scripts use to stop their application", async () => {
    const out = await run({}, "cat /proc/$PPID/comm; tr '\\0' ' ' < /proc/$PPID/cmdline; echo; if pgrep -x node | grep -qx \"$PPID\"; then echo listed; else echo not-listed; fi");
    expect(out.split("\n")).toEqual(["runbridge-runne", expect.stringMatching(/^runbridge-runner\s*$/), "not-listed", ""]);
  });

  it("gives commands HOME, USER and LOGNAME when its own environment has none (systemd sets them only with User=)", async () => {
    const me = userInfo();
    expect(await run({ HOME: undefined, USER: undefined, LOGNAME: undefined }, 'echo "$HOME|$USER|$LOGNAME"')).toBe(`${me.homedir}|${me.username}|${me.username}\n`);
    // What the operator set is kept.
    expect(await run({ HOME: "/srv/deployer", USER: "deployer" }, 'echo "$HOME|$USER"')).toBe("/srv/deployer|deployer\n");
  });
});
