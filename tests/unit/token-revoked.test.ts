import { hashToken, revokedTokenDigest } from "@runbridge/common";
import { decodeTokenRevoked, encodeTokenRevoked } from "@runbridge/contracts";

/** The runner-token revocation notice: names the token by a digest, never by its hash (the runners' signature key). */
describe("token revocation notices", () => {
  const serverId = "6f1c3a52-51a4-4b8e-9a4c-1d2e3f405162";
  const tokenHash = hashToken("rbr_example-token");
  const tokenDigest = revokedTokenDigest(tokenHash);

  it("carries the digest, not the hash, and reads back", () => {
    const message = encodeTokenRevoked({ serverId, tokenDigest });
    expect(message).not.toContain(tokenHash);
    expect(decodeTokenRevoked(message, revokedTokenDigest)).toEqual({ serverId, tokenDigest });
  });

  it("reads an earlier release's notice (the hash) as the same digest", () => {
    expect(decodeTokenRevoked(JSON.stringify({ serverId, tokenHash }), revokedTokenDigest)).toEqual({ serverId, tokenDigest });
  });

  it("refuses anything else without throwing", () => {
    for (const message of ["not json", "{}", JSON.stringify({ serverId }), JSON.stringify({ serverId, tokenHash, tokenDigest }), JSON.stringify({ serverId, tokenDigest: "xyz" })]) {
      expect(decodeTokenRevoked(message, revokedTokenDigest)).toBeNull();
    }
  });
});
