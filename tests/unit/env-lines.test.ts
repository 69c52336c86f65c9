import { EnvBuilder, parseEnvLines } from "../../apps/cli/src/client/env-vars";

/**
 * `--env-file` and the Action's `env` input: the lines users copy from a
 * `.env` file or a compose env_file must mean what they mean there, and a
 * malformed line must be refused without its content reaching a CI log.
 */
describe("env file lines", () => {
  const parse = (text: string) => parseEnvLines(text, "vars.env");

  it("reads names, values, export prefixes, comment and blank lines", () => {
    expect(parse("A=1\n\n# a comment\n  # indented comment\nexport B=two words\r\nC=x=y\nD=")).toEqual({ A: "1", B: "two words", C: "x=y", D: "" });
  });

  it("ends an unquoted value at a # after a space or tab, and keeps a # inside a word", () => {
    expect(parse("A=value # the comment\nB=value\t# tab\nC=pa#ss#word\nD=#leading\nE= # only a comment\nF=url#frag #c")).toEqual({
      A: "value",
      B: "value",
      C: "pa#ss#word",
      D: "#leading",
      E: "",
      F: "url#frag",
    });
  });

  it("reads quoted values whole, # and spaces included, with a comment allowed after them", () => {
    expect(parse(`A="a # not a comment" # comment\nB='lit\\n # x'  #c\nC="esc \\" \\\\ \\n\\t"\nD='' \nE=""`)).toEqual({
      A: "a # not a comment",
      B: "lit\\n # x",
      C: 'esc " \\ \n\t',
      D: "",
      E: "",
    });
  });

  it("refuses a quoted value that is not closed, or with more than a comment after it, naming the line and variable only", () => {
    for (const line of [`SECRET="s3cr3t-unclosed`, `SECRET='s3cr3t-unclosed`, `SECRET="s3cr3t\\"`, `SECRET="s3cr3t"tail`, `SECRET='s3cr3t' tail`]) {
      let message = "";
      try {
        parse(`OK=1\n${line}`);
      } catch (err) {
        message = String(err);
      }
      expect(message).toMatch(/vars\.env line 2 \(SECRET\): a quoted value must end with its closing quote/);
      expect(message).not.toContain("s3cr3t");
    }
  });

  it("refuses __proto__, a valid name that an object would drop without a word, from a file and from --env", () => {
    expect(() => parse("A=1\n__proto__=x")).toThrow(/^vars\.env line 2: __proto__ cannot be passed/);
    const env = new EnvBuilder();
    expect(() => env.flag("__proto__=x")).toThrow(/^--env: __proto__ cannot be passed/);
    expect(() => env.flag("__proto__", { __proto__: "x" } as unknown as Record<string, string>)).toThrow(/__proto__ cannot be passed/);
    env.flag("A=1");
    expect(env.vars).toEqual({ A: "1" });
  });

  it("refuses a line without a valid name by its number only", () => {
    expect(() => parse("A=1\nMIIEvQ-not-a-name-s3cr3t")).toThrow(/^vars\.env line 2: expected KEY=VALUE/);
    expect(() => parse("A=1\n1BAD=s3cr3t")).toThrow(/line 2: expected KEY=VALUE/);
  });
});
