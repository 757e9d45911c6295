/**
 * Long-polling across isolates. A polling client sends each GET and POST as its own request, and
 * with several Workers on one port (`SO_REUSEPORT`) the kernel may hand any of them to any Worker,
 * which users of other Socket.IO servers meet as "Session ID unknown" unless a load balancer keeps
 * sessions sticky. Here a session id ends with the id of the Worker that holds it, and a Worker
 * that gets a request for another's session forwards it (through the coordinator, over
 * `postMessage`) and returns that Worker's answer: a held GET stays held there until it has
 * packets, and a client that gives up on it is told to its owner, which ends the session as if the
 * GET had come straight to it. A WebSocket can't move between isolates: an upgrade that lands on
 * another Worker is refused, and that client stays on polling.
 */

/** A request on its way to the isolate that holds its session. */
export interface ForwardedRequest {
  /** Names this forward, so that its abort can follow it. */
  id: string;
  method: string;
  url: string;
  headers: [string, string][];
  body: Uint8Array | null;
  remoteAddress: string;
}

export interface ForwardedResponse {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
}

/** How the isolates of a cluster reach each other's sessions (routes/serve/worker.ts makes one). */
export interface SessionRouting {
  /** This isolate's node id: it ends the session ids made here. */
  readonly node: string;
  /** Sends `request` to `owner`; resolves with its answer (a 400 if `owner` is gone). */
  forward(owner: string, request: ForwardedRequest): Promise<ForwardedResponse>;
  /** Tells `owner` that the client of forward `id` went away. */
  abort(owner: string, id: string): void;
  /** How this isolate answers the requests others forward to it. */
  serve(handler: (request: ForwardedRequest, signal: AbortSignal) => Promise<Response>): void;
}

/** The isolate a session id names, or undefined (a session id made without routing). */
export function ownerOf(sid: string): string | undefined {
  const at = sid.lastIndexOf(".");
  return at > 0 ? sid.slice(at + 1) : undefined;
}

/** What crosses: the request with its body read (bounded by the caller). */
export function forwardedRequest(
  id: string,
  request: Request,
  body: Uint8Array | null,
  remoteAddress: string,
): ForwardedRequest {
  return {
    id,
    method: request.method,
    url: request.url,
    headers: [...request.headers],
    body,
    remoteAddress,
  };
}

export function requestFrom(forwarded: ForwardedRequest, signal: AbortSignal): Request {
  const init: RequestInit = { method: forwarded.method, headers: forwarded.headers, signal };
  if (forwarded.body !== null) init.body = forwarded.body as BodyInit;
  return new Request(forwarded.url, init);
}

export async function forwardedResponse(response: Response): Promise<ForwardedResponse> {
  return {
    status: response.status,
    headers: [...response.headers],
    body: new Uint8Array(await response.arrayBuffer()),
  };
}

export function responseFrom(forwarded: ForwardedResponse): Response {
  const body = forwarded.status === 204 || forwarded.status === 304 ? null : forwarded.body as BodyInit;
  return new Response(body, { status: forwarded.status, headers: forwarded.headers });
}
