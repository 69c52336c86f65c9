import type { Server } from "../types";
import { StatusBadge, Time } from "./bits";

/**
 * A server's runner as the Servers page shows it: not connected, connected, or connected but degraded —
 * it reports a problem that keeps it from taking operations (its state directory cannot be written), so
 * every operation sent to it fails. Shown in words (the badge's text and the problem), not by colour alone.
 * A problem kept from before the runner went away is not shown: "not connected" is what is known now.
 */
export function RunnerState(props: { server: Server }) {
  const s = props.server;
  // Absent from gateways of earlier versions; null until a runner that says its version connects.
  const version = s.runner_version ? <span className="muted runner-version"> v{s.runner_version.replace(/^v/, "")}</span> : null;
  if (!s.runner_connected) {
    return (
      <>
        <StatusBadge status="disconnected" label="not connected" />
        {version}
      </>
    );
  }
  if (!s.runner_problem) {
    return (
      <>
        <StatusBadge status="connected" />
        {version}
      </>
    );
  }
  return (
    <>
      <StatusBadge status="degraded" />
      {version}
      <p className="runner-problem" data-testid="runner-problem">
        {s.runner_problem}
        {s.runner_problem_since ? (
          <span className="muted">
            {" "}
            (since <Time iso={s.runner_problem_since} />)
          </span>
        ) : null}
      </p>
    </>
  );
}
