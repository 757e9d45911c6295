/**
 * A real Deno KV whose commits fail on purpose, for the paths that handle a failed commit and a
 * commit of unknown outcome: `"fail"` throws before the commit is applied, `"unknown"` applies it
 * and then throws (what a storage layer that dies before answering looks like). Its reads can be
 * made slow, to widen the windows in which other work arrives.
 */

export type Fault = "fail" | "unknown";

export interface FaultyKv {
  kv: Deno.Kv;
  /** Faults for the next atomic commits, in order (a commit with no fault left just commits). */
  faults: Fault[];
  /** Commits attempted so far. */
  commits: number;
  /** Reads (`get`, `getMany`) answer this much later (ms): a slow disk. */
  readDelayMs: number;
}

/** Forwards every property of `target` to it, methods bound; `override` replaces some. A method
 * that returns `target` itself (chaining) returns the proxy instead. */
export function forward<T extends object>(target: T, override: Partial<Record<PropertyKey, unknown>>): T {
  const proxy: T = new Proxy(target, {
    get(t, key) {
      if (key in override) return override[key];
      const value = Reflect.get(t, key);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const result = value.apply(t, args);
        return result === t ? proxy : result;
      };
    },
  });
  return proxy;
}

export function faultyKv(real: Deno.Kv): FaultyKv {
  const state: FaultyKv = { kv: real, faults: [], commits: 0, readDelayMs: 0 };
  const slowly = <A extends unknown[], R>(read: (...args: A) => Promise<R>) => async (...args: A) => {
    const result = await read.apply(real, args);
    if (state.readDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, state.readDelayMs));
    return result;
  };
  state.kv = forward(real, {
    get: slowly(real.get),
    getMany: slowly(real.getMany),
    atomic: () => {
      const op = real.atomic();
      return forward(op, {
        commit: async () => {
          state.commits++;
          const fault = state.faults.shift();
          if (fault === "fail") throw new Error("injected: the KV failed before applying the commit");
          const result = await op.commit();
          if (fault === "unknown") throw new Error("injected: the KV applied the commit and failed to answer");
          return result;
        },
      });
    },
  });
  return state;
}

/** `real` as a remote KV would feel: each atomic commit answered `commitMs` late, each listing
 * started `listMs` late (0: as fast as `real`). For races that need a slow step. */
export function slowKv(real: Deno.Kv, { commitMs = 0, listMs = 0 }: { commitMs?: number; listMs?: number }): Deno.Kv {
  const later = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
  return forward(real, {
    ...(commitMs > 0
      ? {
        atomic: () => {
          const op = real.atomic();
          const commit = op.commit.bind(op);
          return forward(op, {
            commit: async () => {
              await later(commitMs);
              return await commit();
            },
          });
        },
      }
      : {}),
    ...(listMs > 0
      ? {
        list: (selector: Deno.KvListSelector, options?: Deno.KvListOptions) =>
          (async function* () {
            await later(listMs);
            yield* real.list(selector, options);
          })(),
      }
      : {}),
  });
}
