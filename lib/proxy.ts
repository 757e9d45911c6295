/**
 * The app's backend in the loop, in Centrifugo's HTTP proxy format (centrifugal.dev/docs/server/proxy):
 * each connect, join (subscribe) and client publish is POSTed as JSON to the URL set for it
 * (`ROOMCAST_PROXY_CONNECT_URL`, `…_SUBSCRIBE_URL`, `…_PUBLISH_URL`), and the answer decides:
 * `{"result": {…}}` allows (and may set the user, attach info, replace the data), `{"error": {code,
 * message}}` refuses with the backend's numeric code and message, `{"disconnect": {code, reason}}`
 * refuses and closes with that code.
 *
 * Failure is explicit: a backend that is down, slower than `ROOMCAST_PROXY_TIMEOUT`, answers non-2xx,
 * or answers something that is not one of those three, fails the action with `unavailable` (fail
 * closed), or, with `ROOMCAST_PROXY_FAIL_OPEN=1`, lets it through as if there were no proxy. A
 * circuit breaker per kind stops calling a backend that failed FAILURES_TO_OPEN times in a row for
 * OPEN_MS (then one call tries), and calls go through a bounded pool: at most `poolSize` at once and
 * `maxWaiting` waiting per isolate; beyond that, the action fails at once. No I/O but `fetch`.
 */
import { createHmac } from "node:crypto";
import type { Clock } from "./clock.ts";
import type { ProxyConfig } from "./config.ts";
import type { Metrics } from "./metrics.ts";
import { ProtocolError } from "./protocol.ts";

export type ProxyKind = "connect" | "subscribe" | "publish";
const KINDS: ProxyKind[] = ["connect", "subscribe", "publish"];

/** The backend refused, in its words: its numeric code (`{error}`), or the close it asked for
 * (`{disconnect}`). */
export class BackendRefusal extends ProtocolError {
  constructor(
    message: string,
    backendCode: number | undefined,
    readonly disconnect: { code: number; reason: string } | undefined,
  ) {
    super("forbidden", message, undefined, backendCode);
    this.name = "BackendRefusal";
  }
}

/** Who asks: the connection's id, transport and user (connects: the user known so far, if any). */
export interface Asker {
  client: string;
  transport: string;
  user: string;
}

export interface ConnectAnswer {
  /** The user id the backend set, or undefined (keep the one known). */
  user: string | undefined;
  name: string | undefined;
  /** The rest of `info`, shown in presence. */
  info: unknown;
  /** When the connection expires (ms), or undefined. */
  expiresAt: number | undefined;
}

export interface PublishAnswer {
  /** The backend's data, replacing the client's, where it gave one. */
  data: { value: unknown } | undefined;
  skipHistory: boolean;
}

/** A call's outcome: the backend's result, or a refusal (its own, or `unavailable`), or through
 * without asking (fail open). */
export type Verdict<T> = { ok: T } | { refused: ProtocolError } | { through: true };

/** Answers larger than this are garbage. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** `info` (connect, subscribe) larger than this, as JSON, is garbage. */
const MAX_INFO_BYTES = 4096;
const FAILURES_TO_OPEN = 5;
const OPEN_MS = 5000;

export interface ProxyOptions extends ProxyConfig {
  clock: Clock;
  metrics: Metrics;
  /** Calls at once per isolate. @default 64 */
  poolSize?: number;
  /** Calls waiting for the pool at most. @default 1024 */
  maxWaiting?: number;
  fetch?: typeof fetch;
}

/** A circuit breaker: closed (calls go), open (calls fail at once), half-open (one call tries). */
class Breaker {
  failures = 0;
  openUntil = -Infinity;
  probing = false;
  calls = 0;
  failed = 0;
  refused = 0;
  shortCircuited = 0;

  state(now: number): "closed" | "open" | "half-open" {
    if (this.failures < FAILURES_TO_OPEN) return "closed";
    return now < this.openUntil || this.probing ? "open" : "half-open";
  }

  /** Whether a call may go now (in half-open, one at a time). */
  allow(now: number): boolean {
    const state = this.state(now);
    if (state === "closed") return true;
    if (state === "open") return false;
    this.probing = true;
    return true;
  }

  succeeded(): void {
    this.failures = 0;
    this.probing = false;
  }

  fail(now: number): boolean {
    this.probing = false;
    this.failures++;
    if (this.failures < FAILURES_TO_OPEN) return false;
    const opened = now >= this.openUntil;
    this.openUntil = now + OPEN_MS;
    return opened && this.failures === FAILURES_TO_OPEN;
  }
}

/** At most `max` at once, `maxWaiting` waiting, each wait bounded. */
class Pool {
  #active = 0;
  readonly #waiting: (() => void)[] = [];
  constructor(readonly max: number, readonly maxWaiting: number) {}

  acquire(timeoutMs: number): Promise<boolean> | boolean {
    if (this.#active < this.max) {
      this.#active++;
      return true;
    }
    if (this.#waiting.length >= this.maxWaiting) return false;
    return new Promise((resolve) => {
      const go = () => {
        clearTimeout(timer);
        this.#active++;
        resolve(true);
      };
      const timer = setTimeout(() => {
        const at = this.#waiting.indexOf(go);
        if (at >= 0) this.#waiting.splice(at, 1);
        resolve(false);
      }, timeoutMs);
      this.#waiting.push(go);
    });
  }

  release(): void {
    this.#active--;
    this.#waiting.shift()?.();
  }
}

type Answer = { result: Record<string, unknown> } | { refused: ProtocolError } | { failed: string };

/** How often calls past their deadline are aborted: one sweep for every call in flight, cheaper than
 * a timer per call (`AbortSignal.timeout` costs a third of a local call's CPU). */
const SWEEP_MS = 25;

/** Calls in flight and when each must have answered; aborted (TimeoutError) once past it. */
class Deadlines {
  readonly #calls = new Map<AbortController, number>();
  #sweep: ReturnType<typeof setInterval> | undefined;
  constructor(readonly clock: Clock) {}

  add(controller: AbortController, deadline: number): void {
    this.#calls.set(controller, deadline);
    this.#sweep ??= setInterval(() => this.#expire(), SWEEP_MS);
  }

  delete(controller: AbortController): void {
    this.#calls.delete(controller);
    if (this.#calls.size === 0 && this.#sweep !== undefined) {
      clearInterval(this.#sweep);
      this.#sweep = undefined;
    }
  }

  #expire(): void {
    const now = this.clock.now();
    for (const [controller, deadline] of this.#calls) {
      if (now < deadline) continue;
      controller.abort(new DOMException("The backend did not answer in time", "TimeoutError"));
      this.delete(controller);
    }
  }
}

export class BackendProxy {
  readonly #options: ProxyOptions;
  readonly #breakers = new Map<ProxyKind, Breaker>(KINDS.map((kind) => [kind, new Breaker()]));
  readonly #pool: Pool;
  readonly #fetch: typeof fetch;
  readonly #deadlines: Deadlines;
  /** Failures already logged recently, per kind (one line per kind a minute). */
  readonly #toldAt = new Map<ProxyKind, number>();

  constructor(options: ProxyOptions) {
    this.#options = options;
    this.#pool = new Pool(options.poolSize ?? 64, options.maxWaiting ?? 1024);
    this.#fetch = options.fetch ?? fetch;
    this.#deadlines = new Deadlines(options.clock);
    options.metrics.register({ render: () => this.#render() });
  }

  get failOpen(): boolean {
    return this.#options.failOpen;
  }

  /** Whether `kind` is asked (its URL is set). */
  asks(kind: ProxyKind): boolean {
    return this.#url(kind) !== undefined;
  }

  #url(kind: ProxyKind): string | undefined {
    const { connectUrl, subscribeUrl, publishUrl } = this.#options;
    return kind === "connect" ? connectUrl : kind === "subscribe" ? subscribeUrl : publishUrl;
  }

  /** Asks whether a client may connect; `passed` are the client request's headers that go along
   * (`passedHeaders`), `address` its address (`X-Forwarded-For`). */
  async connect(asker: Asker, passed: Record<string, string>, address: string): Promise<Verdict<ConnectAnswer>> {
    const body: Record<string, unknown> = { ...centrifugo(asker) };
    if (asker.user) body.user = asker.user;
    const headers = address && address !== "local" ? { ...passed, "x-forwarded-for": address } : passed;
    const answer = await this.#call("connect", body, headers);
    if (!("result" in answer)) return this.#verdict("connect", answer);
    const result = answer.result;
    const user = result.user;
    const info = result.info;
    const expireAt = result.expire_at;
    if (user !== undefined && (typeof user !== "string" || user.length > 128)) return this.#garbage("connect");
    if (expireAt !== undefined && expireAt !== 0 && (typeof expireAt !== "number" || !(expireAt > 0))) {
      return this.#garbage("connect");
    }
    if (!infoFits(info)) return this.#garbage("connect");
    let name: string | undefined;
    let rest: unknown = info;
    if (isObject(info) && typeof info.name === "string") {
      const { name: given, ...others } = info;
      name = given as string;
      rest = Object.keys(others).length > 0 ? others : undefined;
    }
    return {
      ok: {
        user: user || undefined,
        name,
        info: rest,
        expiresAt: typeof expireAt === "number" && expireAt > 0 ? expireAt * 1000 : undefined,
      },
    };
  }

  /** Asks whether the connection may join `room`; the answer's `info` is its member's there. */
  async subscribe(asker: Asker, room: string): Promise<Verdict<{ info: unknown }>> {
    const answer = await this.#call("subscribe", { ...centrifugo(asker), user: asker.user, channel: room });
    if (!("result" in answer)) return this.#verdict("subscribe", answer);
    if (!infoFits(answer.result.info)) return this.#garbage("subscribe");
    return { ok: { info: answer.result.info } };
  }

  /** Asks whether the connection may publish `data` to `room`, and what to store. */
  async publish(asker: Asker, room: string, data: unknown): Promise<Verdict<PublishAnswer>> {
    const answer = await this.#call("publish", { ...centrifugo(asker), user: asker.user, channel: room, data });
    if (!("result" in answer)) return this.#verdict("publish", answer);
    const result = answer.result;
    if (result.skip_history !== undefined && typeof result.skip_history !== "boolean") return this.#garbage("publish");
    return {
      ok: { data: "data" in result ? { value: result.data } : undefined, skipHistory: result.skip_history === true },
    };
  }

  #verdict<T>(kind: ProxyKind, answer: { refused: ProtocolError } | { failed: string }): Verdict<T> {
    if ("refused" in answer) return answer;
    this.#tell(kind, answer.failed);
    if (this.#options.failOpen) return { through: true };
    return { refused: new ProtocolError("unavailable", "The app's backend is unavailable: try again shortly") };
  }

  #garbage<T>(kind: ProxyKind): Verdict<T> {
    const breaker = this.#breakers.get(kind) as Breaker;
    breaker.failed++;
    breaker.fail(this.#options.clock.now());
    return this.#verdict(kind, { failed: "its answer's result is malformed" });
  }

  #tell(kind: ProxyKind, why: string): void {
    const now = this.#options.clock.now();
    if (now - (this.#toldAt.get(kind) ?? -Infinity) < 60_000) return;
    this.#toldAt.set(kind, now);
    const then = this.#options.failOpen ? "let through (ROOMCAST_PROXY_FAIL_OPEN)" : "refused as unavailable";
    const actions = kind === "connect" ? "connects" : kind === "subscribe" ? "joins" : "publishes";
    console.warn(`roomcast: the ${kind} proxy failed (${why}): ${actions} are ${then}`);
  }

  async #call(kind: ProxyKind, body: Record<string, unknown>, extra: Record<string, string> = {}): Promise<Answer> {
    const url = this.#url(kind) as string;
    const { clock, timeoutMs, secret } = this.#options;
    const breaker = this.#breakers.get(kind) as Breaker;
    const started = clock.now();
    if (!breaker.allow(started)) {
      breaker.shortCircuited++;
      return { failed: "its circuit is open after repeated failures" };
    }
    const slot = this.#pool.acquire(timeoutMs);
    if (!(slot === true || await slot)) {
      if (breaker.probing) breaker.probing = false;
      breaker.shortCircuited++;
      return { failed: "too many calls waiting" };
    }
    breaker.calls++;
    const controller = new AbortController();
    try {
      const text = JSON.stringify(body);
      const headers: Record<string, string> = { ...extra, "content-type": "application/json" };
      if (secret) headers["x-roomcast-signature"] = createHmac("sha256", secret).update(text).digest("hex");
      this.#deadlines.add(controller, started + timeoutMs);
      const response = await this.#fetch(url, {
        method: "POST",
        headers,
        body: text,
        redirect: "manual",
        signal: controller.signal,
      });
      if (!response.ok) {
        await response.body?.cancel().catch(() => {});
        throw new Error(`it answered HTTP ${response.status}`);
      }
      const answer = parseAnswer(await readCapped(response, MAX_ANSWER_BYTES));
      if (typeof answer === "string") throw new Error(answer);
      breaker.succeeded();
      if ("refused" in answer) breaker.refused++;
      return answer;
    } catch (caught) {
      // An abort rejects with the signal's reason, or (reading the body) an AbortError.
      const error = controller.signal.aborted ? controller.signal.reason : caught;
      breaker.failed++;
      if (breaker.fail(clock.now())) {
        console.warn(
          `roomcast: the ${kind} proxy failed ${FAILURES_TO_OPEN} times in a row: not called for ${OPEN_MS / 1000} s`,
        );
      }
      const why = error instanceof Error && error.name === "TimeoutError"
        ? `no answer within ${timeoutMs} ms`
        : error instanceof Error
        ? error.message
        : String(error);
      return { failed: why };
    } finally {
      this.#deadlines.delete(controller);
      this.#pool.release();
    }
  }

  /** Per kind: whether its URL is set, its breaker's state, calls and failures (the dashboard's). */
  state(): Record<ProxyKind, Record<string, unknown>> {
    const now = this.#options.clock.now();
    const out = {} as Record<ProxyKind, Record<string, unknown>>;
    for (const kind of KINDS) {
      const b = this.#breakers.get(kind) as Breaker;
      out[kind] = this.asks(kind)
        ? { url: true, state: b.state(now), calls: b.calls, failures: b.failed, refused: b.refused }
        : { url: false };
    }
    return out;
  }

  #render(): string {
    const now = this.#options.clock.now();
    const calls = [
      "# HELP roomcast_proxy_calls_total Calls to the app's backend (proxy), by kind and outcome: " +
      "ok (allowed), refused (its error or disconnect), failed (down, slow, non-2xx, garbage), " +
      "short_circuited (not called: circuit open or pool full)\n# TYPE roomcast_proxy_calls_total counter\n",
    ];
    const open = [
      "# HELP roomcast_proxy_circuit_open Whether the backend's circuit breaker is open (calls refused without trying), by kind\n# TYPE roomcast_proxy_circuit_open gauge\n",
    ];
    for (const kind of KINDS) {
      if (!this.asks(kind)) continue;
      const b = this.#breakers.get(kind) as Breaker;
      const ok = b.calls - b.failed - b.refused;
      for (
        const [outcome, n] of [["ok", ok], ["refused", b.refused], ["failed", b.failed], [
          "short_circuited",
          b.shortCircuited,
        ]]
      ) {
        calls.push(`roomcast_proxy_calls_total{kind="${kind}",outcome="${outcome}"} ${n}\n`);
      }
      open.push(`roomcast_proxy_circuit_open{kind="${kind}"} ${b.state(now) === "closed" ? 0 : 1}\n`);
    }
    return calls.length > 1 ? calls.join("") + open.join("") : "";
  }
}

/** The proxy a configuration asks for, or undefined when no URL is set. */
export function proxyOf(config: ProxyConfig, clock: Clock, metrics: Metrics, isolates = 1): BackendProxy | undefined {
  if (!config.connectUrl && !config.subscribeUrl && !config.publishUrl) return undefined;
  // The pool is the process's, shared out among its isolates.
  const poolSize = Math.max(4, Math.ceil(64 / isolates));
  return new BackendProxy({ ...config, clock, metrics, poolSize, maxWaiting: poolSize * 16 });
}

/** The fields every Centrifugo proxy request has. */
function centrifugo(asker: Asker): Record<string, unknown> {
  return { client: asker.client, transport: asker.transport, protocol: "json", encoding: "json" };
}

/** The client request's headers a backend may authenticate by, as Centrifugo passes configured
 * ones: copied, since a renewal sends them again after the request was answered. */
export function passedHeaders(headers: Headers | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ["cookie", "authorization", "origin", "user-agent"]) {
    const value = headers?.get(name);
    if (value) out[name] = value;
  }
  return out;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function infoFits(info: unknown): boolean {
  return info === undefined || JSON.stringify(info).length <= MAX_INFO_BYTES;
}

async function readCapped(response: Response, max: number): Promise<string> {
  // A length announced within the cap is read at once (the usual answer); else chunk by chunk, counted.
  const length = Number(response.headers.get("content-length") ?? NaN);
  if (Number.isInteger(length) && length <= max) return await response.text();
  const reader = response.body?.getReader();
  if (!reader) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      await reader.cancel().catch(() => {});
      throw new Error(`its answer is larger than ${max} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** `{result}`, `{error}` or `{disconnect}`, or why the text is none of them. */
function parseAnswer(text: string): Answer | string {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return "its answer is not JSON";
  }
  if (!isObject(value)) return "its answer is not a JSON object";
  const { result, error, disconnect } = value;
  if (isObject(error)) {
    const { code, message } = error;
    if (typeof code !== "number" || !Number.isInteger(code) || (message !== undefined && typeof message !== "string")) {
      return "its error has no numeric code";
    }
    return { refused: new BackendRefusal(clip(message) || "Refused by the app", code, undefined) };
  }
  if (isObject(disconnect)) {
    const { code, reason } = disconnect;
    // WebSocket's application close codes: 3000–4999.
    if (typeof code !== "number" || !Number.isInteger(code) || code < 3000 || code > 4999) {
      return "its disconnect has no close code from 3000 to 4999";
    }
    const why = closeReason(typeof reason === "string" ? reason : "") || "Disconnected by the app";
    return { refused: new BackendRefusal(why, undefined, { code, reason: why }) };
  }
  if (isObject(result)) return { result };
  // `{}` allows with nothing set, as Centrifugo takes it.
  if (result === undefined && error === undefined && disconnect === undefined) return { result: {} };
  return "its result is not an object";
}

/** A close reason: at most 123 bytes of UTF-8 (WebSocket's limit), cut at a character. */
function closeReason(text: string): string {
  const encoder = new TextEncoder();
  let out = "";
  for (const char of text.slice(0, 123)) {
    if (encoder.encode(out + char).length > 123) break;
    out += char;
  }
  return out;
}

/** A backend's message, bounded (a close reason must fit 123 bytes; an error frame need not grow). */
function clip(text: string | undefined): string {
  return (text ?? "").slice(0, 200);
}
