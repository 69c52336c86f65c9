import { TokenKind, displayPrefix, generateToken, isWellFormedToken } from "@runbridge/common";

describe("tokens", () => {
  const kinds = Object.values(TokenKind);

  it.each(kinds)("a generated %s token is well formed for its own kind only", (kind) => {
    const token = generateToken(kind);
    expect(token).toMatch(new RegExp(`^${kind}_[0-9A-Za-z]{42}$`));
    for (const other of kinds) expect(isWellFormedToken(token, other)).toBe(other === kind);
    expect(displayPrefix(token)).toBe(token.slice(0, kind.length + 9));
  });

  it.each(kinds)("a %s token with a wrong checksum, length or character is refused", (kind) => {
    const token = generateToken(kind);
    const last = token.slice(-1);
    expect(isWellFormedToken(token.slice(0, -1) + (last === "0" ? "1" : "0"), kind)).toBe(false);
    expect(isWellFormedToken(token.slice(0, -1), kind)).toBe(false);
    expect(isWellFormedToken(`${token}0`, kind)).toBe(false);
    expect(isWellFormedToken(`${kind}_${"-".repeat(42)}`, kind)).toBe(false);
  });

  it("refuses a prefix that is no token kind, even with a good checksum", () => {
    const unknown = "rbx" as TokenKind;
    expect(isWellFormedToken(generateToken(unknown), unknown)).toBe(false);
  });
});
