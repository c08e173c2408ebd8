/**
 * Run `fn` over `items` with at most `limit` calls in flight. After the first failure no new call
 * starts; it resolves once the calls already running have settled, then rejects with that failure.
 */
export async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  const results = await Promise.allSettled(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
}

/**
 * Object-store calls a step makes at once when it moves many files (a commit's parts, a run's
 * staged files): on a local SeaweedFS a commit of 40 parts of 3.5 MB took 1.6 s one at a time
 * and 0.9 s eight at a time; not measured on AWS S3.
 */
export const OBJECT_STORE_CONCURRENCY = 8;
