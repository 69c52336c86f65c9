import { execFileSync } from "node:child_process";
import { realpathSync } from "node:fs";

export interface OtherNode {
  /** The binary, as given. */
  path: string;
  /** What it says of itself, e.g. "v24.22.3". */
  version: string;
}

/**
 * Node binaries other than the one running the tests, from RUNBRIDGE_TEST_NODES
 * (paths separated by ':'; .ci/run fetches Node 24, the images' Node, for it).
 * A path that is not a working Node fails loudly: a typo must not turn the
 * tests that use it into no tests.
 */
export function otherNodes(): OtherNode[] {
  const paths = (process.env.RUNBRIDGE_TEST_NODES ?? "").split(":").filter(Boolean);
  return paths.map((p) => {
    const version = execFileSync(p, ["--version"], { encoding: "utf8" }).trim();
    if (!/^v\d+\.\d+\.\d+$/.test(version)) throw new Error(`RUNBRIDGE_TEST_NODES: ${p} printed "${version}", not a Node version`);
    return { path: realpathSync(p), version };
  });
}
