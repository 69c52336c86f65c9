/**
 * `work`, or a rejection ("no answer within <ms> ms") once it has taken `ms`: for calls on a
 * connection that queues commands while its server is down, and would otherwise wait for it.
 * The timer is cleared when either settles, and never holds the process open.
 */
export function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}
