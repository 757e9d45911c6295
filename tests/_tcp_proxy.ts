/**
 * A TCP proxy on 127.0.0.1 (ephemeral port) to a local port, for tests of a network stall:
 * `freeze()` stops forwarding while the connections stay open (no reset), `thaw()` resumes;
 * `cut()` closes every connection and each new one until `restore()` (the server is away for
 * this client only); `close()` ends everything.
 */
export interface TcpProxy {
  url: string;
  freeze(): void;
  thaw(): void;
  cut(): void;
  restore(): void;
  close(): void;
}

export function startTcpProxy(targetPort: number, scheme = "redis"): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let frozen = false;
  let cut = false;
  let waiting: (() => void)[] = [];
  const conns = new Set<Deno.Conn>();
  const gate = async () => {
    while (frozen) await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const close = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch {
      // closed already
    }
  };
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    const buffer = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        await gate();
        let at = 0;
        while (at < n) at += await to.write(buffer.subarray(at, n));
      }
    } catch {
      // one side closed
    }
    close(to);
    close(from);
  };
  (async () => {
    try {
      for await (const conn of listener) {
        if (cut) {
          close(conn);
          continue;
        }
        const up = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        conns.add(conn);
        conns.add(up);
        void pipe(conn, up);
        void pipe(up, conn);
      }
    } catch {
      // the listener closed
    }
  })();
  const thaw = () => {
    frozen = false;
    const wake = waiting;
    waiting = [];
    for (const resolve of wake) resolve();
  };
  return {
    url: `${scheme}://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    freeze: () => void (frozen = true),
    thaw,
    cut() {
      cut = true;
      for (const conn of conns) close(conn);
      conns.clear();
    },
    restore: () => void (cut = false),
    close() {
      thaw();
      try {
        listener.close();
      } catch {
        // closed already
      }
      for (const conn of conns) close(conn);
    },
  };
}
