/** The presence contract for every presence. */
import { presenceContract } from "../../tests/presence_contract.ts";
import { MemoryPresence } from "./presence_memory.ts";

presenceContract("MemoryPresence", () => {
  const presence = new MemoryPresence();
  return Promise.resolve({ nodes: [presence], cleanup: () => presence.close() });
}, { nodes: false });
