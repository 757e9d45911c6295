/**
 * STOMP frames from a hostile client: without NULL, with a content-length that lies, with too
 * many or malformed headers, 100,000 headers, floods of SENDs, oversized binary messages, too many
 * transactions, a JSON body too deep. Each gets an ERROR and the close, never a crash, a held event
 * loop or an effect on another client.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "../_server.ts";
import { stallProbe } from "../_stall.ts";
import { RawStomp } from "../_stomp.ts";

const opts = { sanitizeOps: false, sanitizeResources: false };
const CONNECT = "CONNECT\naccept-version:1.2\nheart-beat:0,0\n\n\0";

async function connected(server: TestServer): Promise<RawStomp> {
  const raw = new RawStomp(server);
  await raw.opened;
  raw.send(CONNECT);
  await raw.next("CONNECTED");
  return raw;
}

/** Sends `frames` on a connected client; it must get an ERROR matching `expected`, then the close. */
async function refused(server: TestServer, frames: (string | Uint8Array)[], expected: RegExp): Promise<void> {
  const raw = await connected(server);
  for (const frame of frames) raw.send(frame);
  assert.match(await raw.next("ERROR"), expected);
  await raw.closed;
}

Deno.test(
  { name: "STOMP hostile: malformed frames get an ERROR and the close; others are untouched", ...opts },
  async (t) => {
    await using server = await startTestServer();
    const bystander = await connected(server);
    bystander.send("SUBSCRIBE\nid:1\ndestination:/topic/calm\nreceipt:ok\n\n\0");
    await bystander.next("RECEIPT");
    const cases: [string, string | Uint8Array, RegExp][] = [
      ["no NULL at the end", "SEND\ndestination:/topic/x\n\nhello", /no NULL/],
      [
        "content-length longer than the body",
        "SEND\ndestination:/topic/x\ncontent-length:50\n\nhello\0",
        /content-length/,
      ],
      [
        "content-length shorter than the body",
        "SEND\ndestination:/topic/x\ncontent-length:2\n\nhello\0",
        /content-length/,
      ],
      ["content-length not a number", "SEND\ndestination:/topic/x\ncontent-length:-1\n\nhi\0", /content-length/],
      ["a header without a colon", "SEND\ndestination\n\nhi\0", /name:value/],
      ["an undefined escape", "SEND\ndestination:/topic/x\nh:a\\tb\n\nhi\0", /undefined escape/],
      ["headers that never end", "SEND\ndestination:/topic/x\n", /blank line/],
      ["65 headers", `SEND\n${Array.from({ length: 65 }, (_, i) => `h${i}:v\n`).join("")}\n\0`, /64 headers/],
      ["a header line of 10,000 bytes", `SEND\nh:${"v".repeat(10_000)}\n\n\0`, /within 8192 bytes/],
      [
        "invalid UTF-8 in a header",
        new Uint8Array([...new TextEncoder().encode("SEND\nh:"), 0xff, 0xfe, 10, 10, 0]),
        /UTF-8/,
      ],
      [
        "a JSON body 200 levels deep",
        `SEND\ndestination:/topic/x\ncontent-type:application/json\n\n{"a":${"[".repeat(200)}${"]".repeat(200)}}\0`,
        /deeper|levels/,
      ],
      [
        "a JSON array body 200 levels deep",
        `SEND\ndestination:/topic/x\ncontent-type:application/json\n\n${"[".repeat(200)}${"]".repeat(200)}\0`,
        /deeper|levels/,
      ],
      [
        "a JSON body that is not JSON",
        "SEND\ndestination:/topic/x\ncontent-type:application/json\n\n{nope\0",
        /not valid JSON/,
      ],
      ["a JSON body with 1e400", "SEND\ndestination:/topic/x\ncontent-type:application/json\n\n[1e400]\0", /too large/],
      ["a UNSUBSCRIBE of nothing", "UNSUBSCRIBE\nid:nope\n\n\0", /No subscription/],
      ["a COMMIT of no transaction", "COMMIT\ntransaction:t\n\n\0", /No transaction/],
    ];
    for (const [what, frame, expected] of cases) {
      await t.step(what, () => refused(server, [frame], expected));
    }
    assert.equal((await server.hub.history("x", { limit: 10 })).messages.length, 0, "nothing was stored");
    // The bystander still gets what is published.
    bystander.send("SEND\ndestination:/topic/calm\n\nstill here\0");
    const other = await connected(server);
    other.send("SEND\ndestination:/topic/calm\n\nstill here\0");
    assert.match(await bystander.next("MESSAGE"), /still here/);
  },
);

Deno.test(
  { name: "STOMP hostile: 100,000 headers, floods and oversized messages never hold the loop", ...opts },
  async (t) => {
    await using server = await startTestServer();
    using probe = stallProbe();

    await t.step("a frame of 100,000 headers (over the frame limit) is refused whole", async () => {
      const frame = `SEND\ndestination:/topic/x\n${"h:v\n".repeat(100_000)}\nhi\0`;
      await refused(server, [frame], /larger than 65536/);
    });

    await t.step("a binary message over 16 × the frame limit closes the socket (1009)", async () => {
      const raw = await connected(server);
      raw.send(new Uint8Array(65_536 * 16 + 1));
      assert.equal((await raw.closed).code, 1009);
    });

    await t.step("3,000 SENDs at once: rate_limited as an ERROR, then the close; what passed is stored", async () => {
      const raw = await connected(server);
      raw.send("SUBSCRIBE\nid:1\ndestination:/topic/flood\n\n\0");
      for (let i = 0; i < 3000; i++) raw.send(`SEND\ndestination:/topic/flood\n\nm${i}\0`);
      assert.match(await raw.next("ERROR", 8000), /Too many messages|rate/i);
      await raw.closed;
      const stored = (await server.hub.history("flood", { limit: 100 })).messages.length;
      assert.ok(stored > 0 && stored <= server.config.limits.publishBurst, `${stored} stored`);
    });

    await t.step("9 transactions, or 101 SENDs in one, are refused", async () => {
      await refused(server, Array.from({ length: 9 }, (_, i) => `BEGIN\ntransaction:t${i}\n\n\0`), /8 transactions/);
      await refused(server, [
        "BEGIN\ntransaction:t\n\n\0",
        ...Array.from({ length: 101 }, () => "SEND\ndestination:/topic/x\ntransaction:t\n\nm\0"),
      ], /100 SENDs/);
    });

    assert.ok(probe.stop() < 200, `the loop was held ${Math.round(probe.worst)} ms`);
    const calm = await connected(server);
    calm.send("DISCONNECT\nreceipt:bye\n\n\0");
    await calm.next("RECEIPT");
    await calm.closed;
  },
);
