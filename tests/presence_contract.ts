/**
 * The presence contract (lib/engine/presence.ts), run against every implementation
 * (lib/engine/presence_test.ts). A factory gives one handle per node; `nodes: false` (one node
 * only) runs the single-node steps; `expire` ends a node as a crash would (its entries must be
 * gone within the lease).
 */
import assert from "node:assert/strict";
import type { Presence } from "../lib/engine/presence.ts";

export interface PresenceFixture {
  /** One handle per node, all over one presence. */
  nodes: Presence[];
  /** Makes node `i` stop as if it had crashed, and waits out what its lease allows. */
  expire?(i: number): Promise<void>;
  cleanup(): Promise<void>;
}

export type PresenceFactory = (nodes: number) => Promise<PresenceFixture>;

const ann = { id: "ann", name: "Ann" };
const bob = { id: "bob", name: "Bob" };

export function presenceContract(name: string, factory: PresenceFactory, can: { nodes: boolean }): void {
  const using = async (n: number, body: (fixture: PresenceFixture) => Promise<void>) => {
    const fixture = await factory(n);
    try {
      await body(fixture);
    } finally {
      await fixture.cleanup();
    }
  };

  Deno.test(`${name}: presence contract`, async (t) => {
    await t.step(
      "a user is one member however many connections; first in and last out are told",
      () =>
        using(1, async ({ nodes: [p] }) => {
          const presence = p as Presence;
          assert.deepEqual(await presence.join("r", ann, "c1"), { changed: true, members: 1 });
          assert.deepEqual(await presence.join("r", ann, "c2"), { changed: false, members: 1 });
          assert.deepEqual(await presence.join("r", bob, "c3"), { changed: true, members: 2 });
          assert.deepEqual(await presence.members("r"), [
            { id: "ann", name: "Ann", connections: 2 },
            { id: "bob", name: "Bob", connections: 1 },
          ]);
          assert.deepEqual(await presence.members("r", 1), [{ id: "ann", name: "Ann", connections: 2 }]);
          assert.deepEqual(await presence.leave("r", ann, "c1"), { changed: false, members: 2 });
          assert.deepEqual(await presence.leave("r", ann, "c2"), { changed: true, members: 1 });
          assert.deepEqual(await presence.rooms(), [{ room: "r", members: 1, connections: 1 }]);
          await presence.leave("r", bob, "c3");
          assert.deepEqual(await presence.rooms(), [], "an empty room is not listed");
        }),
    );

    await t.step("a leave without its join, or twice, changes nothing", () =>
      using(1, async ({ nodes: [p] }) => {
        const presence = p as Presence;
        assert.equal((await presence.leave("r", ann, "ghost")).changed, false);
        await presence.join("r", ann, "c1");
        assert.equal((await presence.leave("r", ann, "c1")).changed, true);
        assert.equal((await presence.leave("r", ann, "c1")).changed, false);
        assert.deepEqual(await presence.members("r"), []);
      }));

    await t.step("connections of a user are counted for directs", () =>
      using(1, async ({ nodes: [p] }) => {
        const presence = p as Presence;
        await presence.connect(ann, "c1");
        await presence.connect(ann, "c2");
        assert.equal(await presence.connections("ann"), 2);
        await presence.disconnect(ann, "c1");
        await presence.disconnect(ann, "c1");
        assert.equal(await presence.connections("ann"), 1);
        assert.equal(await presence.connections("nobody"), 0);
      }));

    await t.step(
      "a user's info (a Pusher user_info) is listed with it, as given",
      () =>
        using(can.nodes ? 2 : 1, async ({ nodes }) => {
          const [p, q] = [nodes[0] as Presence, (nodes[1] ?? nodes[0]) as Presence];
          const info = { role: "admin", tags: [], nested: { empty: {} }, text: 'a/b "quoted"' };
          await p.join("r", { id: "cy", name: "Cy", info }, "c1");
          await p.join("r", ann, "c2");
          const listed = (await q.members("r")).sort((a, b) => a.id.localeCompare(b.id));
          assert.deepEqual(listed, [
            { id: "ann", name: "Ann", connections: 1 },
            { id: "cy", name: "Cy", connections: 1, info },
          ]);
          await p.leave("r", { id: "cy", name: "Cy", info }, "c1");
          assert.deepEqual(await q.members("r"), [{ id: "ann", name: "Ann", connections: 1 }]);
        }),
    );

    if (!can.nodes) return;

    await t.step(
      "nodes share one presence: a user on two nodes is one member, told once each way",
      () =>
        using(2, async ({ nodes: [a, b] }) => {
          const [pa, pb] = [a as Presence, b as Presence];
          assert.equal((await pa.join("r", ann, "a1")).changed, true);
          assert.equal((await pb.join("r", ann, "b1")).changed, false);
          await pb.connect(ann, "b1");
          await pa.connect(ann, "a1");
          assert.deepEqual(await pb.members("r"), [{ id: "ann", name: "Ann", connections: 2 }]);
          assert.equal(await pa.connections("ann"), 2);
          assert.equal((await pa.leave("r", ann, "a1")).changed, false);
          assert.equal((await pb.leave("r", ann, "b1")).changed, true);
        }),
    );

    await t.step(
      "what a node that stopped held is gone within its lease",
      () =>
        using(2, async ({ nodes: [a, b], expire }) => {
          const [pa, pb] = [a as Presence, b as Presence];
          await pa.join("r", ann, "a1");
          await pa.connect(ann, "a1");
          await pb.join("r", bob, "b1");
          await expire?.(0);
          assert.deepEqual((await pb.members("r")).map((m) => m.id), ["bob"]);
          assert.equal(await pb.connections("ann"), 0);
        }),
    );
  });
}
