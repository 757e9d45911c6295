/** A backplane for a single isolate: every event goes straight to this isolate's hub. */
import type { Backplane, BackplaneEvent, BackplaneHandler } from "./backplane.ts";

export class LocalBackplane implements Backplane {
  #handler: BackplaneHandler | undefined;

  publish(event: BackplaneEvent): void {
    this.#handler?.(event);
  }

  subscribe(handler: BackplaneHandler): void {
    this.#handler = handler;
  }

  close(): Promise<void> {
    this.#handler = undefined;
    return Promise.resolve();
  }
}
