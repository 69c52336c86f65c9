import { createRedis } from "@runbridge/common";
import { RUNNER_PROBLEM_MAX_CHARS } from "@runbridge/contracts";
import { testPrisma } from "../helpers/db";
import { createFixture } from "../helpers/factories";
import { sample } from "../helpers/metrics";
import { waitFor } from "../helpers/processes";
import { scriptedRunner, untilConnected, type ScriptedSocket } from "../helpers/scripted-runner";
import type { TestStack } from "../helpers/stack";
import { type Fixture, useStack } from "../helpers/suite";

type ServerView = { runner_connected: boolean; runner_problem: string | null; runner_problem_since: string | null };

/**
 * A runner's health (runner:health, and the problem said in its handshake) on its server: what keeps it
 * from taking operations shows in the management API's server view and list until it says it is gone,
 * entering and leaving that state are audited, malformed or oversized reports are dropped, and only the
 * server's newest connection's reports count. Runners speaking the real protocol; real dispatchers.
 */
describe("runner health on its server", () => {
  const suite = useStack();
  let stack: TestStack;
  const sockets: ScriptedSocket[] = [];
  beforeAll(() => {
    ({ stack } = suite);
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.disconnect();
  });

  const connect = async (fx: Fixture, problem?: string) => {
    const socket = scriptedRunner(stack.dispatcherPorts[0] as number, fx.runnerToken, problem === undefined ? {} : { auth: { problem } });
    sockets.push(socket);
    await untilConnected(socket);
    // Admitted once presence names it (written after the admission's row update).
    await waitFor(async () => (await stack.redis.get(stack.keys.runnerPresence(fx.server.id)))?.endsWith(`/${socket.id}`), 10_000, "presence to name the connection");
    return socket;
  };
  const view = async (fx: Fixture): Promise<ServerView> => {
    const res = await stack.api().get(`/api/v1/servers/${fx.server.id}`).set("Authorization", `Bearer ${fx.apiKey}`);
    expect(res.status).toBe(200);
    return res.body as ServerView;
  };
  const listed = async (fx: Fixture): Promise<ServerView | undefined> => {
    const res = await stack.api().get("/api/v1/servers").set("Authorization", `Bearer ${fx.apiKey}`);
    return (res.body.data as (ServerView & { id: string })[]).find((s) => s.id === fx.server.id);
  };
  const shows = (fx: Fixture, problem: string | null) => waitFor(async () => ((await view(fx)).runner_problem === problem ? view(fx) : null), 10_000, `runner_problem ${JSON.stringify(problem)}`);
  const events = (fx: Fixture) => testPrisma().auditEvent.findMany({ where: { serverId: fx.server.id, type: { startsWith: "runner." } }, orderBy: { createdAt: "asc" } });
  const dispatcherLog = () => stack.dispatchers[0]?.output ?? "";
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const degradedRunners = async () => sample(await fetch(`http://127.0.0.1:${stack.dispatcherPorts[0]}/metrics`).then((r) => r.text()), "runbridge_dispatcher_degraded_runners");

  it("shows the problem a runner says, as it connects and as it changes, in the server's view and the list, and null once it says it is gone", async () => {
    const fx = await createFixture();
    expect(await view(fx)).toMatchObject({ runner_connected: false, runner_problem: null, runner_problem_since: null });

    const full = "runner cannot record operations, so it refuses every operation until it can: state directory /var/lib/runbridge cannot be written (ENOSPC: no space left on device); free space on its disk";
    const socket = await connect(fx, full);
    // On the row by the time the server shows connected: said in the handshake, written with the admission.
    const degraded = await view(fx);
    expect(degraded).toMatchObject({ runner_connected: true, runner_problem: full, runner_problem_since: expect.any(String) });
    expect(await listed(fx)).toMatchObject({ runner_connected: true, runner_problem: full, runner_problem_since: degraded.runner_problem_since });
    expect(await degradedRunners()).toBe(1);

    // Another cause while it lasts: the text follows, the time it began stays.
    const readOnly = full.replace("(ENOSPC: no space left on device); free space on its disk", "(EROFS: read-only file system); remount its filesystem read-write");
    socket.emit("runner:health", { problem: readOnly });
    expect(await shows(fx, readOnly)).toMatchObject({ runner_problem_since: degraded.runner_problem_since });

    socket.emit("runner:health", { problem: null });
    expect(await shows(fx, null)).toMatchObject({ runner_connected: true, runner_problem_since: null });
    expect(await listed(fx)).toMatchObject({ runner_problem: null, runner_problem_since: null });
    expect(await degradedRunners()).toBe(0);

    // Audited as the server enters and leaves the state, not at each change of its text.
    expect((await events(fx)).map((e) => ({ type: e.type, data: e.data }))).toEqual([
      { type: "runner.degraded", data: { problem: full, client_ip: expect.any(String) } },
      { type: "runner.recovered", data: { problem: readOnly, problem_since: expect.any(String), client_ip: expect.any(String) } },
    ]);
  });

  it("keeps the problem while the runner is away; a runner that says nothing as it connects (an earlier release) clears it", async () => {
    const fx = await createFixture();
    const first = await connect(fx, "runner cannot record operations: disk");
    first.disconnect();
    await waitFor(async () => !(await view(fx)).runner_connected, 10_000, "runner shown disconnected");
    expect(await view(fx)).toMatchObject({ runner_connected: false, runner_problem: "runner cannot record operations: disk" });

    // Never sends runner:health either: nothing it says is known, so no problem is.
    await connect(fx);
    expect(await view(fx)).toMatchObject({ runner_connected: true, runner_problem: null, runner_problem_since: null });
    expect((await events(fx)).map((e) => e.type)).toEqual(["runner.degraded", "runner.recovered"]);
  });

  it("drops malformed and oversized reports (logged; the problem stays as it was), takes one at the bound, and stores U+0000 as U+FFFD", async () => {
    const fx = await createFixture();
    const socket = await connect(fx);
    socket.emit("runner:health", { problem: "before" });
    await shows(fx, "before");

    const dropped = () => dispatcherLog().split("\n").filter((l) => l.includes("dropped a malformed event from a runner") && l.includes('"event":"runner:health"')).length;
    const droppedBefore = dropped();
    for (const bad of [undefined, "text", { problem: 42 }, {}, { problem: "" }, { problem: "x".repeat(RUNNER_PROBLEM_MAX_CHARS + 1) }]) socket.emit("runner:health", bad);
    await waitFor(async () => dropped() - droppedBefore >= 6, 5_000, "every bad report to be logged");
    expect(await view(fx)).toMatchObject({ runner_problem: "before" });

    const atBound = "y".repeat(RUNNER_PROBLEM_MAX_CHARS);
    socket.emit("runner:health", { problem: atBound });
    await shows(fx, atBound);
    socket.emit("runner:health", { problem: "nul\u0000here" });
    await shows(fx, "nul\uFFFDhere");
    expect(stack.dispatchers[0]?.running).toBe(true);
  });

  it("a problem too long in the handshake counts as none said; one with U+0000 is stored with U+FFFD, and the runner is still shown seen", async () => {
    const fx = await createFixture();
    const first = await connect(fx, "z".repeat(RUNNER_PROBLEM_MAX_CHARS + 1));
    expect(await view(fx)).toMatchObject({ runner_connected: true, runner_problem: null });
    first.disconnect();
    await waitFor(async () => !(await view(fx)).runner_connected, 10_000, "runner shown disconnected");
    const seen = (await testPrisma().server.findUniqueOrThrow({ where: { id: fx.server.id } })).lastSeenAt as Date;
    await sleep(20);
    await connect(fx, "nul\u0000here");
    expect(await view(fx)).toMatchObject({ runner_connected: true, runner_problem: "nul\uFFFDhere" });
    expect(((await testPrisma().server.findUniqueOrThrow({ where: { id: fx.server.id } })).lastSeenAt as Date).getTime()).toBeGreaterThan(seen.getTime());
  });

  it("only the newest connection's reports count: an older one still open (its replacement held up) changes nothing", async () => {
    const fx = await createFixture();
    const older = await connect(fx);
    // A frozen dispatcher (subscribed to the adapter's requests, never answering) holds up the newer
    // connection's lookup of older ones for seconds at a time: both stay open meanwhile.
    const stalled = createRedis(stack.redisUrl);
    await stalled.subscribe(`${stack.keys.socketAdapter}-request#/#`);
    try {
      const newer = await connect(fx);
      expect(older.connected).toBe(true);
      const notNewest = () => dispatcherLog().match(/a runner connection that is not its server's newest reported its health; not recorded/g)?.length ?? 0;

      older.emit("runner:health", { problem: "the older connection's disk is full" });
      await waitFor(async () => notNewest() >= 1, 5_000, "the older connection's report to be turned down");
      expect(await view(fx)).toMatchObject({ runner_problem: null });

      newer.emit("runner:health", { problem: "the newer connection's disk is full" });
      await shows(fx, "the newer connection's disk is full");

      older.emit("runner:health", { problem: null });
      await waitFor(async () => notNewest() >= 2, 5_000, "the older connection's second report to be turned down");
      await sleep(200);
      expect(await view(fx)).toMatchObject({ runner_problem: "the newer connection's disk is full" });
      expect(older.connected).toBe(true);
    } finally {
      await stalled.quit();
    }
  });
});
