/**
 * Keeps the last `cap` bytes of a stream (the end of a log is where failures
 * are) and says whether anything was dropped.
 */
export class TailCapture {
  private chunks: Buffer[] = [];
  private size = 0;
  truncated = false;

  constructor(private readonly cap: number) {}

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size > this.cap && this.chunks.length > 0) {
      const first = this.chunks[0] as Buffer;
      const excess = this.size - this.cap;
      this.truncated = true;
      if (first.length <= excess) {
        this.chunks.shift();
        this.size -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.size -= excess;
      }
    }
  }

  text(): string {
    const s = Buffer.concat(this.chunks).toString("utf8");
    // Dropping the head can split a multi-byte character.
    return this.truncated ? s.replace(/^\uFFFD+/, "") : s;
  }
}
