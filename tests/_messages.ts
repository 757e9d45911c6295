/** A stored message for tests that need one of a given room and offset (data: the offset). */
import type { StoredMessage } from "../lib/protocol.ts";

export function storedMessage(room: string, offset: number): StoredMessage {
  return {
    type: "message",
    room,
    id: `m${offset}`,
    epoch: "e",
    offset,
    from: { id: "u", name: "U" },
    data: offset,
    ts: 0,
  };
}
