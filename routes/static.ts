/**
 * Serves the files of `static/` (the chat page, its panels in `static/chat/`, the browser client)
 * by name: no other directory, no dot files, a strict Content-Security-Policy on the page.
 */
import type { Context } from "hono";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
  ico: "image/x-icon",
  png: "image/png",
};

const CSP = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self'; " +
  "script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

const STATIC_DIR = new URL("../static/", import.meta.url);

/** Responds with `static/<name>` (`name` is `file.ext`, `chat/file.ext` or `admin/file.ext`), or undefined when
 * there is no such file. */
export async function staticFile(c: Context, name: string): Promise<Response | undefined> {
  const match = /^(?:(?:chat|admin)\/)?[a-z0-9_-]+\.([a-z]+)$/.exec(name);
  const type = match?.[1] ? TYPES[match[1]] : undefined;
  if (!type) return undefined;
  let bytes: Uint8Array<ArrayBuffer>;
  try {
    bytes = await Deno.readFile(new URL(name, STATIC_DIR));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return undefined;
    throw error;
  }
  const headers: Record<string, string> = {
    "content-type": type,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
  };
  if (type.startsWith("text/html")) headers["content-security-policy"] = CSP;
  return c.body(bytes, 200, headers);
}
