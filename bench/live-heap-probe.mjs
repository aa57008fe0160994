// Preloaded into dsd by bench:heap-cap (node --expose-gc --import): on SIGUSR2, a full GC, then
// the heap that survived it appended to $HEAP_PROBE_OUT as one JSON line. What is live, not what
// the heap has grown to hold.
import { appendFileSync } from 'node:fs';

process.on('SIGUSR2', () => {
  globalThis.gc?.();
  const { heapUsed, rss } = process.memoryUsage();
  appendFileSync(process.env.HEAP_PROBE_OUT ?? '/dev/null', `${JSON.stringify({ heapUsed, rss })}\n`);
});
