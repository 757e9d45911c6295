/** Runs the store contract (tests/store_contract.ts) against every store. */
import { storeContract } from "../../tests/store_contract.ts";
import { KvStore } from "./store_kv.ts";
import { MemoryStore } from "./store_memory.ts";

storeContract("MemoryStore", (retention, clock) => {
  const store = new MemoryStore(retention, clock);
  return Promise.resolve({ store, cleanup: () => store.close() });
}, { shared: false, durable: false });

storeContract("KvStore :memory:", async (retention, clock) => {
  const store = await KvStore.open(":memory:", { ...retention, clock });
  return { store, cleanup: () => store.close() };
}, { shared: false, durable: false });

storeContract("KvStore file", async (retention, clock) => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/sub/dir/roomcast.kv`;
  const options = { ...retention, clock };
  const store = await KvStore.open(path, options);
  const opened = [store];
  const open = async () => {
    const another = await KvStore.open(path, options);
    opened.push(another);
    return another;
  };
  return {
    store,
    sibling: open,
    reopen: open,
    async cleanup() {
      for (const s of opened) await s.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}, { shared: true, durable: true });
