/** The presence contract for every presence. */
import { presenceContract } from "../../tests/presence_contract.ts";
import { MemoryPresence } from "./presence_memory.ts";
import { KvPresence } from "./presence_kv.ts";

presenceContract("MemoryPresence", () => {
  const presence = new MemoryPresence();
  return Promise.resolve({ nodes: [presence], cleanup: () => presence.close() });
}, { nodes: false });

presenceContract("KvPresence (nodes sharing one KV)", async (n) => {
  const kv = await Deno.openKv(":memory:");
  const nodes = Array.from({ length: n }, (_, i) => new KvPresence({ kv, node: `n${i}`, leaseMs: 300 }));
  return {
    nodes,
    async expire(i) {
      await nodes[i]?.close(); // stops renewing, as a killed instance would
      await new Promise((resolve) => setTimeout(resolve, 700));
    },
    async cleanup() {
      await Promise.all(nodes.map((p) => p.close()));
      kv.close();
    },
  };
}, { nodes: true });
