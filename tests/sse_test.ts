/**
 * Server-Sent Events on /events: ids, Last-Event-ID and ?since= resume, several rooms, keep-alive
 * comments and errors, with Deno's EventSource, npm:eventsource and a plain fetch reader.
 */
import assert from "node:assert/strict";
import { EventSource as NpmEventSource } from "eventsource";
import { postJson, startTestServer, type TestServer } from "./_server.ts";

interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** Reads an event stream with fetch, so tests see ids, comments and the exact wire format. */
class SseReader {
  readonly events: SseEvent[] = [];
  readonly comments: string[] = [];
  readonly #reader: ReadableStreamDefaultReader<string>;
  #buffer = "";
  private constructor(readonly response: Response) {
    const body = response.body;
    if (!body) throw new Error("no body");
    this.#reader = body.pipeThrough(new TextDecoderStream()).getReader();
  }

  static async open(server: TestServer, query: string, headers: Record<string, string> = {}): Promise<SseReader> {
    const response = await server.fetch(`/events${query}`, { headers });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
    return new SseReader(response);
  }

  /** Waits for the next event matching `pred`, reading more of the stream as needed. */
  async next(pred: (e: SseEvent) => boolean = () => true, ms = 3000): Promise<SseEvent> {
    await this.#readUntil(() => this.events.some(pred), ms, "event");
    const index = this.events.findIndex(pred);
    return this.events.splice(index, 1)[0] as SseEvent;
  }

  /** Waits until a comment line with this text has arrived. */
  async comment(text: string, ms = 3000): Promise<void> {
    await this.#readUntil(() => this.comments.includes(text), ms, `comment "${text}"`);
  }

  async #readUntil(done: () => boolean, ms: number, what: string): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      if (Date.now() > deadline) {
        throw new Error(`no SSE ${what} within ${ms} ms; unread ${JSON.stringify(this.events)}`);
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<"timeout">((resolve) =>
        timer = setTimeout(() => resolve("timeout"), deadline - Date.now())
      );
      const chunk = await Promise.race([this.#reader.read(), timeout]);
      clearTimeout(timer);
      if (chunk === "timeout") continue;
      if (chunk.done) throw new Error("stream ended");
      this.#parse(chunk.value);
    }
  }

  #parse(text: string): void {
    this.#buffer += text;
    let end;
    while ((end = this.#buffer.indexOf("\n\n")) >= 0) {
      const block = this.#buffer.slice(0, end);
      this.#buffer = this.#buffer.slice(end + 2);
      const event: SseEvent = { event: "message", id: undefined, data: "" };
      let isEvent = false;
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) this.comments.push(line.slice(1).trim());
        else if (line.startsWith("event: ")) [event.event, isEvent] = [line.slice(7), true];
        else if (line.startsWith("id: ")) event.id = line.slice(4);
        else if (line.startsWith("data: ")) [event.data, isEvent] = [line.slice(6), true];
      }
      if (isEvent) this.events.push(event);
    }
  }

  messages(): Promise<SseEvent> {
    return this.next((e) => e.event === "message");
  }

  async close(): Promise<void> {
    await this.#reader.cancel();
  }
}

const publish = async (server: TestServer, room: string, data: unknown) => {
  const response = await postJson(server, `/api/rooms/${room}/messages`, { data });
  assert.equal(response.status, 201);
  return await response.json();
};

/** Waits for `count` message events on an EventSource (Deno's or npm's). */
function collect(source: EventSource | NpmEventSource, count: number, ms = 8000): Promise<MessageEvent[]> {
  return new Promise((resolve, reject) => {
    const got: MessageEvent[] = [];
    const timer = setTimeout(() => reject(new Error(`only ${got.length}/${count} events`)), ms);
    source.addEventListener("message", (e) => {
      got.push(e as MessageEvent);
      if (got.length === count) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
}

Deno.test("SSE: one room, event: message, id epoch:offset, data = the stored message", async () => {
  await using server = await startTestServer();
  const reader = await SseReader.open(server, "?room=news&name=Feed");
  const joined = await reader.next((e) => e.event === "joined");
  const { epoch } = JSON.parse(joined.data);
  assert.equal(joined.id, `${epoch}:0`);
  const ack = await publish(server, "news", { text: "hello" });
  const event = await reader.messages();
  assert.equal(event.id, `${epoch}:1`);
  const message = JSON.parse(event.data);
  assert.deepEqual(message, (await (await server.fetch("/api/rooms/news/messages")).json()).messages[0]);
  assert.equal(message.id, ack.id);
  assert.deepEqual(await server.hub.presence("news"), [], "a reader is no member unless it asks (?presence=1)");
  await reader.close();
});

Deno.test("SSE: Deno's EventSource resumes with Last-Event-ID after the stream drops", async () => {
  await using server = await startTestServer({ heartbeat: false });
  const source = new EventSource(`${server.url}/events?room=resume`);
  const first = collect(source, 3);
  await new Promise((resolve) => source.addEventListener("joined", resolve, { once: true }));
  for (let i = 1; i <= 3; i++) await publish(server, "resume", i);
  const seen = await first;
  assert.deepEqual(seen.map((e) => JSON.parse(e.data).offset), [1, 2, 3]);
  const epoch = JSON.parse(seen[0]?.data ?? "{}").epoch;
  assert.equal(seen[2]?.lastEventId, `${epoch}:3`);

  // Drop every connection; the browser-style client reconnects by itself after `retry`.
  const more = collect(source, 4);
  server.hub.close(1001, "test drop");
  for (let i = 4; i <= 7; i++) await publish(server, "resume", i);
  const replayed = await more;
  assert.deepEqual(replayed.map((e) => JSON.parse(e.data).offset), [4, 5, 6, 7], "the gap, once, in order");
  source.close();
});

Deno.test("SSE: npm:eventsource with ?since= replays from there", async () => {
  await using server = await startTestServer();
  const first = await publish(server, "npm", "a");
  for (const d of ["b", "c"]) await publish(server, "npm", d);
  const source = new NpmEventSource(`${server.url}/events?room=npm&since=${first.epoch}:1`);
  const events = await collect(source, 2);
  assert.deepEqual(events.map((e) => JSON.parse(e.data).data), ["b", "c"]);
  assert.deepEqual(events.map((e) => e.lastEventId), [`${first.epoch}:2`, `${first.epoch}:3`]);
  source.close();
});

Deno.test("SSE: several rooms resume each at its own offset", async () => {
  await using server = await startTestServer();
  const a1 = await publish(server, "a", "a1");
  const b1 = await publish(server, "b", "b1");
  const reader = await SseReader.open(server, "?room=a&room=b");
  await reader.next((e) => e.event === "joined");
  const last = await reader.next((e) => e.event === "joined");
  assert.equal(last.id, `a=${a1.epoch}:1,b=${b1.epoch}:1`);
  await publish(server, "a", "a2");
  const event = await reader.messages();
  assert.equal(event.id, `a=${a1.epoch}:2,b=${b1.epoch}:1`);
  await reader.close();

  await publish(server, "b", "b2");
  await publish(server, "a", "a3");
  await publish(server, "b", "b3");
  const resumed = await SseReader.open(server, "?room=a&room=b", { "last-event-id": event.id ?? "" });
  const got = [];
  for (let i = 0; i < 3; i++) got.push(JSON.parse((await resumed.messages()).data).data);
  assert.deepEqual(got.sort(), ["a3", "b2", "b3"], "a from 3, b from 2: nothing twice, nothing missed");
  const joins = [await resumed.next((e) => e.event === "joined"), await resumed.next((e) => e.event === "joined")];
  assert.deepEqual(joins.map((e) => JSON.parse(e.data).recovered), [true, true]);
  await resumed.close();
});

Deno.test("SSE: rooms named with = and , (Pusher's channel characters) resume each at its own offset", async () => {
  await using server = await startTestServer();
  // Names that would break the id's `room=position,room=position` form if written as they are.
  const [x, y] = ["a=b,c", "k;v=1"];
  const x1 = await publish(server, x, "x1");
  const y1 = await publish(server, y, "y1");
  const query = `?room=${encodeURIComponent(x)}&room=${encodeURIComponent(y)}`;
  const reader = await SseReader.open(server, query);
  await reader.next((e) => e.event === "joined");
  const last = await reader.next((e) => e.event === "joined");
  assert.equal(last.id, `a%3Db%2Cc=${x1.epoch}:1,k;v%3D1=${y1.epoch}:1`);
  await reader.close();
  await publish(server, x, "x2");
  await publish(server, y, "y2");
  const resumed = await SseReader.open(server, query, { "last-event-id": last.id ?? "" });
  const got = [];
  for (let i = 0; i < 2; i++) got.push(JSON.parse((await resumed.messages()).data).data);
  assert.deepEqual(got.sort(), ["x2", "y2"], "each room from where it was: nothing twice, nothing missed");
  await resumed.close();
});

Deno.test("SSE: keep-alive comments", async () => {
  await using server = await startTestServer({ sseKeepAliveMs: 30 });
  const reader = await SseReader.open(server, "?room=quiet");
  await reader.next((e) => e.event === "joined");
  await publish(server, "quiet", 1);
  await reader.messages();
  await reader.comment("keep-alive");
  await reader.close();
});

Deno.test("SSE: errors before the stream starts", async (t) => {
  await using server = await startTestServer({ authSecret: "sse-secret" });
  const status = async (path: string, headers: Record<string, string> = {}) => {
    const response = await server.fetch(path, { headers });
    const body = await response.json();
    return [response.status, body.error.code];
  };
  await t.step("no room", async () => assert.deepEqual(await status("/events"), [400, "bad_request"]));
  await t.step("bad room", async () => assert.deepEqual(await status("/events?room=a%20b"), [400, "bad_request"]));
  await t.step("no token", async () => assert.deepEqual(await status("/events?room=a"), [401, "unauthorized"]));
  await t.step("foreign origin", async () => {
    assert.deepEqual(await status("/events?room=a", { origin: "https://evil.example" }), [403, "forbidden"]);
  });
});

Deno.test("SSE: ?since=0 replays what each room's history keeps, oldest first, then live", async (t) => {
  await using server = await startTestServer({ historyLimit: 3 });
  for (let i = 1; i <= 5; i++) await publish(server, "kept", i);
  const second = await publish(server, "other", "o1");

  await t.step("one room whose history was trimmed: the 3 kept, then live", async () => {
    const reader = await SseReader.open(server, "?room=kept&since=0");
    const joined = JSON.parse((await reader.next((e) => e.event === "joined")).data);
    assert.equal(joined.recovered, true);
    const replay = [await reader.messages(), await reader.messages(), await reader.messages()];
    assert.deepEqual(replay.map((e) => JSON.parse(e.data).data), [3, 4, 5]);
    await publish(server, "kept", 6);
    assert.equal(JSON.parse((await reader.messages()).data).data, 6);
    await reader.close();
  });

  await t.step("several rooms, and an empty one: each from its start", async () => {
    const reader = await SseReader.open(server, "?room=other&room=empty&since=0");
    const event = await reader.messages();
    assert.deepEqual([JSON.parse(event.data).data, event.id], ["o1", `other=${second.epoch}:1,empty=0`]);
    await publish(server, "empty", "e1");
    assert.equal(JSON.parse((await reader.messages()).data).data, "e1");
    await reader.close();
  });

  await t.step("a /ws join can't stand for it: an empty epoch is an unknown one", async () => {
    const client = await server.client();
    const joined = await client.request({ type: "join", room: "kept", since: { epoch: "", offset: 0 } });
    assert.deepEqual([joined.type, joined.recovered], ["joined", false]);
    await client.close();
  });
});
