import { commitUrl } from "../format";
import type { RunContext } from "../types";

/**
 * A run's commit, linked when its context names one. The host is always shown
 * next to the link: run_context.server_url comes from whoever holds an
 * automation key, so the reader must see where the link goes (a GitHub
 * Enterprise host is legitimate, an unknown one is worth a second look).
 */
export function CommitLink(props: { context: RunContext; sha: string }) {
  const url = commitUrl(props.context);
  const sha = <code>{props.sha.slice(0, 12)}</code>;
  if (!url) return sha;
  return (
    <>
      <a href={url} target="_blank" rel="noopener noreferrer">
        {sha}
      </a>{" "}
      <span className="muted link-host" data-testid="commit-host">
        on {new URL(url).host}
      </span>
    </>
  );
}
