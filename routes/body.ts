/**
 * Reading a request body with bounds: at most `maxBytes`, within `timeoutMs` (a body dripped a
 * byte at a time would otherwise hold its connection forever). Used by the HTTP API and by
 * Engine.IO's long-polling POSTs.
 */
import { errorStatus, ProtocolError } from "../lib/protocol.ts";

export interface BodyBounds {
  maxBytes: number;
  timeoutMs: number;
}

/** The body's bytes; throws `too_large`, `timeout` or (no body) `bad_request` ProtocolErrors. */
export async function readBody(request: Request, { maxBytes, timeoutMs }: BodyBounds): Promise<Uint8Array> {
  const tooLarge = () => new ProtocolError("too_large", `Body is larger than ${maxBytes} bytes`);
  if (Number(request.headers.get("content-length")) > maxBytes) throw tooLarge();
  const body = request.body;
  if (!body) throw new ProtocolError("bad_request", "A body is required");
  const reader = body.getReader();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ProtocolError("timeout", `Body was not received within ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    while (true) {
      const { value, done } = await Promise.race([reader.read(), late]);
      if (done) break;
      size += value.length;
      if (size > maxBytes) throw tooLarge();
      parts.push(value);
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
  const bytes = new Uint8Array(size);
  parts.reduce((at, part) => (bytes.set(part, at), at + part.length), 0);
  return bytes;
}

/** The HTTP status for what `readBody` threw: 413, 408, or 400 (no body, a broken stream). */
export function bodyErrorStatus(error: unknown): number {
  return error instanceof ProtocolError ? errorStatus[error.code] : 400;
}
