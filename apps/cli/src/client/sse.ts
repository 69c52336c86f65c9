/** One Server-Sent Event as the HTML standard's parser dispatches it. */
export interface SseEvent {
  event: string;
  data: string;
  /** The last `id:` seen so far in the stream (what Last-Event-ID resumes from). */
  id: string | undefined;
}

/**
 * Parses an event stream incrementally (a fetch body), per the EventSource
 * processing model: `field: value` lines, comment lines starting with `:`,
 * multi-line `data`, an event dispatched at each blank line.
 */
export async function* readEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "";
  let data: string[] = [];
  let lastId: string | undefined;

  const takeLines = function* (final: boolean): Generator<string> {
    for (;;) {
      const m = /\r\n|\n|\r/.exec(buffer);
      // A lone trailing \r may be the first half of \r\n: wait for the next chunk.
      if (!m || (m[0] === "\r" && m.index === buffer.length - 1 && !final)) return;
      yield buffer.slice(0, m.index);
      buffer = buffer.slice(m.index + m[0].length);
    }
  };

  const handle = (line: string): SseEvent | null => {
    if (line === "") {
      const out = data.length ? { event: event || "message", data: data.join("\n"), id: lastId } : null;
      event = "";
      data = [];
      return out;
    }
    if (line.startsWith(":")) return null;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id" && !value.includes("\0")) lastId = value;
    return null;
  };

  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    for (const line of takeLines(false)) {
      const ev = handle(line);
      if (ev) yield ev;
    }
  }
  buffer += decoder.decode();
  for (const line of takeLines(true)) {
    const ev = handle(line);
    if (ev) yield ev;
  }
}

/** Nothing at all (not even a keep-alive comment) came on an event stream within its idle bound. */
export class StreamIdleError extends Error {}

/**
 * A fetch body's chunks, ending in StreamIdleError once nothing arrives for
 * `idleMs`. A connection that goes silent without closing (a proxy or load
 * balancer that lost it) would otherwise hold its reader until fetch's own
 * 300 s body timeout, though the gateway sends a keep-alive every 15 s.
 */
export async function* idleBounded(body: ReadableStream<Uint8Array>, idleMs: number): AsyncGenerator<Uint8Array> {
  // A reader, not the stream's async iterator: only cancelling the reader ends a read that is still waiting.
  const reader = body.getReader();
  try {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), idleMs);
      });
      const next = await Promise.race([reader.read(), idle]).finally(() => clearTimeout(timer));
      if (next === null) throw new StreamIdleError(`nothing arrived for ${idleMs / 1000} s`);
      if (next.done) return;
      yield next.value;
    }
  } finally {
    // However the reading ends (idle, dropped, or the consumer stopping early): the connection is closed.
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
