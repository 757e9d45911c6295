import assert from "node:assert/strict";
import { decodeClientFrame, decodeClientValue, exceedsBytes, historyLimit, refNear } from "./codec.ts";
import { FrameError } from "./protocol.ts";

function ok(text: string) {
  const frame = decodeClientFrame(text);
  if (frame instanceof FrameError) throw new Error(`unexpected error: ${frame.message}`);
  return frame;
}

function err(text: string) {
  const frame = decodeClientFrame(text);
  assert.ok(frame instanceof FrameError, `expected an error for ${text}`);
  return frame;
}

Deno.test("codec decodes every client frame of the contract", () => {
  assert.deepEqual(ok('{"type":"join","room":"r"}'), { type: "join", room: "r" });
  assert.deepEqual(ok('{"type":"join","room":"a.b:c@d-e_f","since":{"epoch":"e1","offset":41},"ref":7}'), {
    type: "join",
    room: "a.b:c@d-e_f",
    since: { epoch: "e1", offset: 41 },
    ref: 7,
  });
  assert.deepEqual(ok('{"type":"join","room":"r","since":null}'), { type: "join", room: "r" });
  assert.deepEqual(ok('{"type":"leave","room":"r","ref":"x"}'), { type: "leave", room: "r", ref: "x" });
  assert.deepEqual(ok('{"type":"publish","room":"r","data":null}'), { type: "publish", room: "r", data: null });
  assert.deepEqual(ok('{"type":"publish","room":"r","data":{"text":"hi"},"extra":1}'), {
    type: "publish",
    room: "r",
    data: { text: "hi" },
  });
  assert.deepEqual(ok('{"type":"direct","to":"u1","data":[1]}'), { type: "direct", to: "u1", data: [1] });
  assert.deepEqual(ok('{"type":"signal","room":"r","event":"typing"}'), {
    type: "signal",
    room: "r",
    event: "typing",
    data: null,
  });
  assert.deepEqual(ok('{"type":"history","room":"r"}'), { type: "history", room: "r", limit: 50 });
  assert.deepEqual(ok('{"type":"history","room":"r","before":9,"limit":500}'), {
    type: "history",
    room: "r",
    before: 9,
    limit: 100,
  });
  assert.deepEqual(ok('{"type":"presence","room":"r"}'), { type: "presence", room: "r" });
  assert.deepEqual(ok('{"type":"ping"}'), { type: "ping" });
  assert.deepEqual(ok('{"type":"pong"}'), { type: "pong" });
});

Deno.test("codec refuses malformed frames with bad_request and keeps the ref", () => {
  assert.equal(err("nope").message, "Frame is not valid JSON");
  assert.equal(err("null").message, "Frame must be a JSON object");
  assert.equal(err('"join"').message, "Frame must be a JSON object");
  assert.equal(err("{}").message, "Field type is required");
  const unknown = err('{"type":"explode","ref":"k"}');
  assert.equal(unknown.code, "bad_request");
  assert.equal(unknown.ref, "k");
  assert.match(err('{"type":"join","room":""}').message, /room must match/);
  assert.match(err('{"type":"join","room":"a/b"}').message, /room must match/);
  assert.match(err(`{"type":"join","room":"${"r".repeat(129)}"}`).message, /room must match/);
  assert.match(err('{"type":"join","room":"r","since":{"epoch":"e","offset":-1}}').message, /since/);
  assert.match(err('{"type":"join","room":"r","since":{"epoch":"e","offset":1.5}}').message, /since/);
  assert.match(err('{"type":"history","room":"r","limit":0}').message, /limit/);
  assert.match(err('{"type":"history","room":"r","after":"1"}').message, /after/);
  assert.match(err('{"type":"direct","to":"","data":1}').message, /to must be/);
  assert.match(err('{"type":"signal","room":"r","event":""}').message, /event/);
  assert.match(err('{"type":"ping","ref":[1]}').message, /ref/);
  assert.match(err('{"type":"ping","ref":"' + "x".repeat(129) + '"}').message, /ref/);
  assert.equal(err('{"type":"publish","room":"r","ref":3}').ref, 3);
});

Deno.test("exceedsBytes counts UTF-8 bytes", () => {
  assert.equal(exceedsBytes("abc", 3), false);
  assert.equal(exceedsBytes("abcd", 3), true);
  assert.equal(exceedsBytes("é".repeat(10), 19), true);
  assert.equal(exceedsBytes("é".repeat(10), 20), false);
  assert.equal(exceedsBytes("😀".repeat(1000), 3999), true);
});

Deno.test("historyLimit defaults to 50 and clamps to 100", () => {
  assert.equal(historyLimit(undefined), 50);
  assert.equal(historyLimit(7), 7);
  assert.equal(historyLimit(1000), 100);
  assert.throws(() => historyLimit(-1), FrameError);
});

Deno.test("codec refuses numbers too large for a double (they would be stored as null), keeps the rest", () => {
  for (const data of ["1e400", "-1E+999", '[1, {"a": 2e308}]', "9".repeat(400)]) {
    const frame = decodeClientFrame(`{"type":"publish","room":"r","data":${data},"ref":"q"}`);
    assert.ok(frame instanceof FrameError, data.slice(0, 20));
    assert.deepEqual([frame.code, frame.ref], ["bad_request", "q"]);
  }
  for (const data of ["1e308", "1e-400", '"e999 in a string"', "123456789", "[1.5e100]"]) {
    assert.ok(!(decodeClientFrame(`{"type":"publish","room":"r","data":${data}}`) instanceof FrameError), data);
  }
});

Deno.test("refNear finds a too-large frame's ref where clients put it (first or last field), and nothing else", () => {
  const big = "x".repeat(100_000);
  assert.equal(refNear(`{"type":"publish","room":"r","data":"${big}","ref":"q7"}`), "q7");
  assert.equal(refNear(`{"ref":12,"type":"publish","room":"r","data":"${big}"}`), 12);
  assert.equal(refNear(`{"type":"publish","room":"r","data":"${big}","ref":"a\\"b"}`), 'a"b');
  assert.equal(refNear(`{"type":"publish","room":"r","data":"${big}"}`), undefined);
  assert.equal(
    refNear(`{"type":"publish","data":"${big} \\",\\"ref\\":\\"fake\\"}"}`),
    undefined,
    "not inside a string",
  );
  assert.equal(
    refNear(`{"type":"publish","ref":"${"r".repeat(200)}","data":"${big}"}`),
    undefined,
    "too long for a ref",
  );
});

Deno.test("decodeClientValue checks a frame a transport built as decodeClientFrame checks a parsed one", () => {
  const value = { type: "publish", room: "r", data: { n: 1 }, ref: "s1" };
  assert.deepEqual(decodeClientValue(value), decodeClientFrame(JSON.stringify(value)));
  for (const bad of [{ type: "nope" }, { type: "join", room: "no spaces" }, { type: "publish", room: "r", ref: {} }]) {
    const error = decodeClientValue(bad);
    assert.ok(error instanceof FrameError, JSON.stringify(bad));
    assert.equal(error.code, "bad_request");
  }
});
