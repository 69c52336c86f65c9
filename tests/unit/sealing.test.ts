import { Sealer } from "@runbridge/common";

/** The AES-256-GCM envelopes that carry secrets through Redis: what opens, and what must not. */
describe("Sealer", () => {
  const key = Buffer.alloc(32, 7).toString("base64");
  const sealer = new Sealer(key, []);
  const parts = (envelope: string) => envelope.split(".") as [string, string, string, string, string];

  it("opens what it sealed, with the same additional data only", () => {
    const envelope = sealer.seal("s3cret", "op-1");
    expect(sealer.open(envelope, "op-1")).toBe("s3cret");
    expect(() => sealer.open(envelope, "op-2")).toThrow();
  });

  it("refuses an envelope whose tag was shortened (GCM would accept a 4-byte tag)", () => {
    const [v, id, iv, tag, ct] = parts(sealer.seal("s3cret"));
    const short = Buffer.from(tag, "base64url").subarray(0, 4).toString("base64url");
    expect(() => sealer.open([v, id, iv, short, ct].join("."))).toThrow("malformed envelope");
  });

  it("refuses a nonce of another length, and a changed ciphertext", () => {
    const [v, id, iv, tag, ct] = parts(sealer.seal("s3cret"));
    const longIv = Buffer.concat([Buffer.from(iv, "base64url"), Buffer.alloc(4)]).toString("base64url");
    expect(() => sealer.open([v, id, longIv, tag, ct].join("."))).toThrow("malformed envelope");
    const flipped = Buffer.from(ct, "base64url");
    flipped[0] = (flipped[0] ?? 0) ^ 1;
    expect(() => sealer.open([v, id, iv, tag, flipped.toString("base64url")].join("."))).toThrow();
  });
});
