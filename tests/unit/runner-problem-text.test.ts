import { RUNNER_PROBLEM_MAX_CHARS, handshakeProblem, runnerEventSchemas, runnerProblemText } from "@runbridge/contracts";

/**
 * A runner's problem (runner:health) as the runner sends it and as a dispatcher takes it: bounded, so that
 * what a runner says fits the dispatcher's check (a longer report is dropped), and storable in PostgreSQL.
 */
describe("runner problem text", () => {
  const accepted = (problem: unknown) => runnerEventSchemas["runner:health"].validate({ problem }).error === undefined;

  it("is sent as it is when it fits, and cut with an ellipsis to the bound the dispatcher checks when it does not", () => {
    expect(runnerProblemText("disk full")).toBe("disk full");
    const atBound = "a".repeat(RUNNER_PROBLEM_MAX_CHARS);
    expect(runnerProblemText(atBound)).toBe(atBound);
    const cut = runnerProblemText(`state directory /${"d/".repeat(3000)} cannot be written`);
    expect(cut).toHaveLength(RUNNER_PROBLEM_MAX_CHARS);
    expect(cut.endsWith("…")).toBe(true);
    expect(accepted(cut)).toBe(true);
    expect(accepted(`${atBound}b`)).toBe(false);
  });

  it("never cuts a character in half, and replaces U+0000, which PostgreSQL text cannot hold", () => {
    // The bound falls between the two halves of a surrogate pair: the whole character goes.
    const text = `${"a".repeat(RUNNER_PROBLEM_MAX_CHARS - 2)}😀 and more`;
    const cut = runnerProblemText(text);
    expect(cut).toBe(`${"a".repeat(RUNNER_PROBLEM_MAX_CHARS - 2)}…`);
    // A lone surrogate does not survive UTF-8: it would come back as U+FFFD.
    expect(Buffer.from(cut, "utf8").toString("utf8")).toBe(cut);
    expect(runnerProblemText("a\u0000b")).toBe("a\uFFFDb");
  });

  it("is taken from a handshake only when it is one a report could carry: anything else is none said", () => {
    expect(handshakeProblem("disk full")).toBe("disk full");
    for (const junk of [undefined, null, "", 42, { problem: "x" }, "x".repeat(RUNNER_PROBLEM_MAX_CHARS + 1)]) expect(handshakeProblem(junk)).toBeNull();
    expect(accepted(null)).toBe(true);
    expect(accepted("")).toBe(false);
  });
});
