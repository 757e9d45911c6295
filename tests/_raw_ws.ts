/**
 * A WebSocket client over a plain TCP connection whose reading the test controls: it can stop
 * reading (so the server's send queue grows as with a slow or stalled reader) and resume.
 */
import assert from "node:assert/strict";

export class RawWsClient {
  readonly #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  /** Text frames received so far. */
  readonly texts: string[] = [];
  closeCode: number | undefined;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  /** Connects and completes the handshake (the 101 response is read, nothing after it). */
  static async connect(url: string): Promise<RawWsClient> {
    const { hostname, port, pathname, search } = new URL(url);
    const conn = await Deno.connect({ hostname, port: Number(port) });
    await conn.write(new TextEncoder().encode(
      `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const client = new RawWsClient(conn);
    while (!new TextDecoder().decode(client.#buffer).includes("\r\n\r\n")) await client.#fill();
    const text = new TextDecoder().decode(client.#buffer);
    assert.match(text, /^HTTP\/1.1 101/);
    const end = text.indexOf("\r\n\r\n") + 4;
    client.#buffer = client.#buffer.slice(new TextEncoder().encode(text.slice(0, end)).length);
    return client;
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    const n = await this.#conn.read(chunk);
    if (n === null) return false;
    const merged = new Uint8Array(this.#buffer.length + n);
    merged.set(this.#buffer);
    merged.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = merged;
    return true;
  }

  /** Sends one masked text frame. */
  async send(text: string): Promise<void> {
    const payload = new TextEncoder().encode(text);
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const head = payload.length < 126
      ? [0x81, 0x80 | payload.length]
      : [0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff];
    const frame = new Uint8Array(head.length + 4 + payload.length);
    frame.set(head);
    frame.set(mask, head.length);
    payload.forEach((b, i) => frame[head.length + 4 + i] = b ^ (mask[i % 4] as number));
    await this.#conn.write(frame);
  }

  /** Parses the complete frames buffered so far into `texts` (and `closeCode`). */
  #parse(): void {
    while (this.#buffer.length >= 2) {
      const b = this.#buffer;
      const opcode = (b[0] as number) & 0x0f;
      let length = (b[1] as number) & 0x7f;
      let at = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = ((b[2] as number) << 8) | (b[3] as number);
        at = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
        at = 10;
      }
      if (b.length < at + length) return;
      const payload = b.subarray(at, at + length);
      if (opcode === 1) this.texts.push(new TextDecoder().decode(payload));
      if (opcode === 8) this.closeCode = ((payload[0] ?? 0) << 8) | (payload[1] ?? 0);
      this.#buffer = b.slice(at + length);
    }
  }

  /** Reads until `done()` holds or `ms` pass; false on timeout or end of stream. */
  async readUntil(done: () => boolean, ms = 10_000): Promise<boolean> {
    const deadline = Date.now() + ms;
    this.#parse();
    while (!done()) {
      if (Date.now() > deadline) return false;
      if (!await this.#fill()) return false;
      this.#parse();
    }
    return true;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }
}

/** The status line a WebSocket upgrade of `path` gets with `Origin: origin` (no frame is sent). */
export async function upgradeStatus(serverUrl: string, path: string, origin: string): Promise<string> {
  const { hostname, port } = new URL(serverUrl);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  try {
    await conn.write(new TextEncoder().encode(
      `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: ${origin}\r\n\r\n`,
    ));
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    return new TextDecoder().decode(buf.subarray(0, n ?? 0)).split("\r\n")[0] ?? "";
  } finally {
    conn.close();
  }
}
