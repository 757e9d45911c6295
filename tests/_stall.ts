/**
 * A latency probe for hostile tests: the test and the server share one event loop, so a timer
 * that fires every few milliseconds measures how long the loop was held up while an attack ran.
 */

export interface StallProbe {
  /** The longest the loop was held between two ticks so far (ms, beyond the tick's own period). */
  readonly worst: number;
  /** Stops the timer and returns `worst`. */
  stop(): number;
}

const PERIOD_MS = 2;

/** Starts a probe; `stop()` it (or `using` it) before the test ends. */
export function stallProbe(): StallProbe & Disposable {
  let last = performance.now();
  let worst = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - PERIOD_MS);
    last = now;
  }, PERIOD_MS);
  const stop = () => {
    clearInterval(timer);
    const now = performance.now();
    worst = Math.max(worst, now - last - PERIOD_MS);
    return worst;
  };
  return {
    get worst() {
      return worst;
    },
    stop,
    [Symbol.dispose]: () => void stop(),
  };
}
