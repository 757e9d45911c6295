/** The presence contract for every presence. */
import { presenceContract } from "../../tests/presence_contract.ts";
import { RedisLink } from "./redis.ts";
import { RedisPresence } from "./presence_redis.ts";
import { startRedis } from "../../tests/_redis.ts";
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

presenceContract("RedisPresence (processes on one Redis)", async (n) => {
  const redis = await startRedis();
  const links = await Promise.all(Array.from({ length: n }, async () => {
    const link = new RedisLink({ url: redis.url });
    await link.open();
    return link;
  }));
  const nodes = links.map((link, i) => new RedisPresence({ link, node: `n${i}`, leaseMs: 300 }));
  return {
    nodes,
    async expire(i) {
      await nodes[i]?.close(); // stops renewing, as a killed process would
      await new Promise((resolve) => setTimeout(resolve, 900));
    },
    async cleanup() {
      await Promise.all(nodes.map((p) => p.close()));
      await Promise.all(links.map((link) => link.close()));
      await redis[Symbol.asyncDispose]();
    },
  };
}, { nodes: true });
