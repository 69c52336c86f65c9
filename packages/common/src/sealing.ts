import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";

/**
 * The retired keys in RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS: comma-separated,
 * blank entries ignored. The boot check reads the list with this too, so every
 * key it accepts is one the sealer gets.
 */
export function previousKeyList(raw: string | undefined): string[] {
  return (raw ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
}

/** GCM's standard nonce and its full tag, the only lengths an envelope is made or opened with. */
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM envelopes: "v1.<keyId>.<iv>.<tag>.<ciphertext>" (base64url parts).
 * The key id (first 8 hex chars of SHA-256 of the key) lets old envelopes be
 * opened during a key rotation while new ones use the active key.
 */
export class Sealer {
  private readonly active: { id: string; key: Buffer };
  private readonly keys = new Map<string, Buffer>();

  constructor(activeKeyB64: string, previousKeysB64: string[] = []) {
    this.active = Sealer.entry(activeKeyB64);
    this.keys.set(this.active.id, this.active.key);
    for (const k of previousKeysB64.filter(Boolean)) {
      const e = Sealer.entry(k);
      this.keys.set(e.id, e.key);
    }
  }

  static fromConfig(cfg: { RUNBRIDGE_ENCRYPTION_KEY: string; RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS?: string }): Sealer {
    return new Sealer(cfg.RUNBRIDGE_ENCRYPTION_KEY, previousKeyList(cfg.RUNBRIDGE_PREVIOUS_ENCRYPTION_KEYS));
  }

  private static entry(b64: string): { id: string; key: Buffer } {
    const key = Buffer.from(b64, "base64");
    if (key.length !== 32) throw new Error("encryption keys must be 32 bytes, base64-encoded");
    return { id: createHash("sha256").update(key).digest("hex").slice(0, 8), key };
  }

  get activeKeyId(): string {
    return this.active.id;
  }

  /** `aad` binds the envelope to its context (e.g. an operation id) so it cannot be replayed elsewhere. */
  seal(plaintext: string, aad = ""): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.active.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(aad));
    const ct = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return ["v1", this.active.id, iv.toString("base64url"), cipher.getAuthTag().toString("base64url"), ct.toString("base64url")].join(".");
  }

  open(envelope: string, aad = ""): string {
    const [version, keyId, iv, tag, ct] = envelope.split(".");
    if (version !== "v1" || !keyId || !iv || !tag || ct === undefined) throw new Error("malformed envelope");
    const key = this.keys.get(keyId);
    if (!key) throw new Error(`envelope sealed with unknown key id ${keyId}`);
    const ivBytes = Buffer.from(iv, "base64url");
    const tagBytes = Buffer.from(tag, "base64url");
    // GCM accepts tags as short as 4 bytes unless told their length: a shortened tag would make
    // forging an envelope a matter of 2^32 tries against anything that answers whether one opened.
    if (ivBytes.length !== IV_BYTES || tagBytes.length !== TAG_BYTES) throw new Error("malformed envelope");
    const decipher = createDecipheriv("aes-256-gcm", key, ivBytes, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(aad));
    decipher.setAuthTag(tagBytes);
    return Buffer.concat([decipher.update(Buffer.from(ct, "base64url")), decipher.final()]).toString("utf8");
  }

  keyIdOf(envelope: string): string | undefined {
    return envelope.split(".")[1];
  }
}
