/**
 * An app backend for roomcast's proxy (lib/proxy.ts) on 127.0.0.1, written as a backend for
 * Centrifugo's HTTP proxy would be: POST /connect, /subscribe, /publish with Centrifugo's request
 * fields, answering `{result}`, `{error}` or `{disconnect}`. Each kind's answer is a function the
 * test sets (a value is sent as JSON, a `Response` as is, and it may wait); every call is recorded,
 * with its headers and whether its signature was right.
 */
import { createHmac } from "node:crypto";
import type { ProxyConfig } from "../lib/config.ts";

export type ProxyKind = "connect" | "subscribe" | "publish";

export interface ProxyCall {
  kind: ProxyKind;
  body: Record<string, unknown>;
  headers: Headers;
  /** The X-Roomcast-Signature matched the body (with the backend's secret), where it has one. */
  signed: boolean | undefined;
}

export type Answerer = (body: Record<string, unknown>) => unknown | Promise<unknown>;

export interface Backend extends AsyncDisposable {
  url: string;
  calls: ProxyCall[];
  answers: Partial<Record<ProxyKind, Answerer>>;
  /** Calls being answered now, and the most at once. */
  inFlight: number;
  maxInFlight: number;
  /** The proxy settings that point roomcast here (every kind, or those named). */
  config(overrides?: Partial<ProxyConfig>, kinds?: ProxyKind[]): ProxyConfig;
  calledFor(kind: ProxyKind): ProxyCall[];
  close(): Promise<void>;
}

export function startBackend(answers: Partial<Record<ProxyKind, Answerer>> = {}, secret?: string): Backend {
  const calls: ProxyCall[] = [];
  const backend = {
    calls,
    answers,
    inFlight: 0,
    maxInFlight: 0,
  } as Backend;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const kind = new URL(request.url).pathname.slice(1) as ProxyKind;
    const text = await request.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(text);
    } catch {
      return new Response("not json", { status: 400 });
    }
    const given = request.headers.get("x-roomcast-signature");
    const signed = secret === undefined ? undefined : given === createHmac("sha256", secret).update(text).digest("hex");
    calls.push({ kind, body, headers: request.headers, signed });
    backend.inFlight++;
    backend.maxInFlight = Math.max(backend.maxInFlight, backend.inFlight);
    try {
      const answer = await (backend.answers[kind] ?? (() => ({ result: {} })))(body);
      return answer instanceof Response ? answer : Response.json(answer);
    } finally {
      backend.inFlight--;
    }
  });
  const url = `http://127.0.0.1:${server.addr.port}`;
  backend.url = url;
  backend.calledFor = (kind) => calls.filter((call) => call.kind === kind);
  backend.config = (overrides = {}, kinds = ["connect", "subscribe", "publish"]) => ({
    connectUrl: kinds.includes("connect") ? `${url}/connect` : undefined,
    subscribeUrl: kinds.includes("subscribe") ? `${url}/subscribe` : undefined,
    publishUrl: kinds.includes("publish") ? `${url}/publish` : undefined,
    timeoutMs: 1000,
    secret,
    failOpen: false,
    ...overrides,
  });
  let closed: Promise<void> | undefined;
  backend.close = () => closed ??= server.shutdown();
  backend[Symbol.asyncDispose] = () => backend.close();
  return backend;
}

/** A URL on 127.0.0.1 where nothing listens (a backend that is down). */
export function downUrl(): string {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return `http://127.0.0.1:${port}`;
}
