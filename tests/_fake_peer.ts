/** A hub peer that keeps what it is sent, parsed, and how it was closed: for hub tests without sockets. */
import { jsonEncoder, type Peer } from "../lib/peer.ts";

// deno-lint-ignore no-explicit-any
export type Frame = Record<string, any>;

export class FakePeer implements Peer {
  readonly frames: Frame[] = [];
  readonly encoder = jsonEncoder;
  readonly liveness = "app" as const;
  queuedBytes = 0;
  closed: { code: number; reason: string } | undefined;
  constructor(readonly id: string, readonly user = { id: `u-${id}`, name: id }) {}
  send(text: string): void {
    this.frames.push(JSON.parse(text));
  }
  close(code: number, reason: string): void {
    this.closed = { code, reason };
  }
  of(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type);
  }
}
