/**
 * The backplane contract (lib/engine/backplane.ts), run against every implementation
 * (lib/engine/backplane_test.ts). A factory gives `nodes` connected backplanes, as isolates would
 * have; `crosses: false` (one isolate only) runs the single-node steps.
 */
import { storedMessage } from "./_messages.ts";
import assert from "node:assert/strict";
import type { Backplane, BackplaneEvent } from "../lib/engine/backplane.ts";
import type { StoredMessage } from "../lib/protocol.ts";
import { quiet, until } from "./_wait.ts";

export type BackplaneFactory = (nodes: number) => Promise<{ nodes: Backplane[]; cleanup(): Promise<void> }>;

interface Heard {
  event: BackplaneEvent;
  node: string;
}

function listen(backplane: Backplane): Heard[] {
  const heard: Heard[] = [];
  backplane.onEvent((event, node) => heard.push({ event, node }));
  return heard;
}

const message = (room: string, offset: number): BackplaneEvent => {
  const stored = storedMessage(room, offset);
  return { kind: "message", room, message: stored, json: JSON.stringify(stored) };
};

/** `messages: false`: stored messages don't cross this backplane (the store carries them), as its
 * `messages` says. */
export function backplaneContract(
  name: string,
  factory: BackplaneFactory,
  can: { crosses: boolean; messages?: boolean },
): void {
  const messages = can.messages ?? true;
  Deno.test(`${name}: backplane contract`, async (t) => {
    await t.step("publish reaches this isolate's handler at once, once, in order, with its node", async () => {
      const { nodes: [a], cleanup } = await factory(1);
      try {
        const heard = listen(a as Backplane);
        for (let i = 1; i <= 3; i++) a?.publish(message("r", i));
        assert.deepEqual(heard.map((h) => [(h.event as { message: StoredMessage }).message.offset, h.node]), [
          [1, a?.node],
          [2, a?.node],
          [3, a?.node],
        ]);
      } finally {
        await cleanup();
      }
    });

    if (!can.crosses) return;

    await t.step("a room's events reach the isolates subscribed to it, not the others, never back", async () => {
      const { nodes, cleanup } = await factory(3);
      const [a, b, c] = nodes as [Backplane, Backplane, Backplane];
      try {
        const [ha, hb, hc] = [listen(a), listen(b), listen(c)];
        b.subscribe("r");
        await b.subscribed?.();
        a.publish(message("r", 1));
        a.publish({
          kind: "signal",
          room: "r",
          from: { id: "u", name: "U" },
          event: "typing",
          data: null,
          origin: "c1",
        });
        assert.equal(a.messages, messages ? "backplane" : "store", "it says whether stored messages cross it");
        // Events cross isolates asynchronously.
        await until(() => hb.length >= (messages ? 2 : 1), 2000, "b to hear r's events");
        const kinds = messages ? [["message", a.node], ["signal", a.node]] : [["signal", a.node]];
        assert.deepEqual(hb.map((h) => [h.event.kind, h.node]), kinds);
        await quiet(50, "nothing reaches c, nor comes back to a");
        assert.equal(hc.length, 0, "c is not subscribed to r");
        assert.equal(ha.length, 2, "a heard its own events once, not echoed back");
      } finally {
        await cleanup();
      }
    });

    await t.step("directs and broadcasts reach every isolate", async () => {
      const { nodes, cleanup } = await factory(3);
      const [a, b, c] = nodes as [Backplane, Backplane, Backplane];
      try {
        const [hb, hc] = [listen(b), listen(c)];
        listen(a);
        a.publish({ kind: "direct", to: "u", id: "d1", from: { id: "s", name: "S" }, data: 1, ts: 0 });
        a.publish({ kind: "broadcast", id: "b1", data: "all", ts: 0 });
        await until(() => hb.length >= 2 && hc.length >= 2, 2000, "b and c to hear both");
        assert.deepEqual(hb.map((h) => h.event.kind), ["direct", "broadcast"]);
        assert.deepEqual(hc.map((h) => h.event.kind), ["direct", "broadcast"]);
      } finally {
        await cleanup();
      }
    });

    await t.step("interest is counted: one unsubscribe undoes one subscribe", async () => {
      const { nodes, cleanup } = await factory(2);
      const [a, b] = nodes as [Backplane, Backplane];
      try {
        const hb = listen(b);
        listen(a);
        const signal = (n: number): BackplaneEvent => ({
          kind: "signal",
          room: "r",
          from: { id: "u", name: "U" },
          event: `e${n}`,
          data: n,
          origin: "c",
        });
        b.subscribe("r");
        b.subscribe("r");
        b.unsubscribe("r");
        await b.subscribed?.();
        a.publish(signal(1));
        await until(() => hb.length >= 1, 2000, "b, still subscribed once, to hear the first signal");
        assert.equal(hb.length, 1, "still subscribed once");
        b.unsubscribe("r");
        await b.subscribed?.();
        a.publish(signal(2));
        await quiet(50, "the second signal must not reach b");
        assert.equal(hb.length, 1, "no longer subscribed");
      } finally {
        await cleanup();
      }
    });

    if (!messages) return;

    await t.step("a message event's JSON and fields cross intact", async () => {
      const { nodes, cleanup } = await factory(2);
      const [a, b] = nodes as [Backplane, Backplane];
      try {
        const hb = listen(b);
        listen(a);
        b.subscribe("é-room");
        await b.subscribed?.();
        const event = message("é-room", 7);
        a.publish(event);
        await until(() => hb.length >= 1, 2000, "b to hear the message");
        assert.deepEqual(hb[0]?.event, event);
      } finally {
        await cleanup();
      }
    });
  });
}
