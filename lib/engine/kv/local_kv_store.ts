/**
 * `ROOMCAST_SEQUENCER=local`: this process numbers each room's messages (local_sequencer.ts), an append
 * resolves at once and is stored right after. One process owns the KV file (open.ts takes
 * `<path>.lock`).
 */
import type { NewMessage, Position } from "../../protocol.ts";
import { type NewEpoch, pending } from "./format.ts";
import type { KvStoreOptions } from "./history.ts";
import { LocalSequencer } from "./local_sequencer.ts";
import type { Appended, OnDurable } from "../store.ts";
import { KvStore } from "./kv_store.ts";

export class LocalKvStore extends KvStore {
  readonly #sequencer: LocalSequencer;

  constructor(kv: Deno.Kv, options: KvStoreOptions, lock?: Deno.FsFile) {
    super(kv, options, lock);
    this.#sequencer = new LocalSequencer(this.history);
  }

  /** Also files what an unclean stop left in the commit log, before anything is numbered. */
  override async start(): Promise<void> {
    await super.start();
    await this.#sequencer.start();
  }

  appendNow(message: NewMessage): Appended | undefined {
    return this.#sequencer.appendNow(message);
  }

  protected appendOnce(message: NewMessage, onDurable?: OnDurable): Promise<Appended> {
    return new Promise((resolve, reject) => this.#sequencer.append(pending(message, resolve, reject, onDurable)));
  }

  position(room: string): Promise<Position> {
    return this.#sequencer.position(room);
  }

  /** Messages handed out but not committed or not filed yet come first. */
  protected flush(room: string): Promise<void> {
    return this.#sequencer.flush(room);
  }

  protected startEpoch(room: string): Promise<NewEpoch> {
    return this.#sequencer.reset(room);
  }

  protected stop(): Promise<void> {
    return this.#sequencer.close();
  }
}
