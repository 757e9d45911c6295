/** A backplane for a single isolate: every event goes straight to this isolate's hub. Interest and
 * trouble don't arise: there is nobody else to hear from. */
import type { Backplane, BackplaneEvent, BackplaneHandler } from "../backplane.ts";

export class LocalBackplane implements Backplane {
  #handler: BackplaneHandler | undefined;

  readonly messages = "backplane" as const;
  constructor(readonly node: string = "local") {}

  publish(event: BackplaneEvent): void {
    this.#handler?.(event, this.node);
  }

  onEvent(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  subscribe(): void {}

  unsubscribe(): void {}

  onTrouble(): void {}

  close(): Promise<void> {
    this.#handler = undefined;
    return Promise.resolve();
  }
}
