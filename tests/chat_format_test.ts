/** static/chat/format.js: the chat page's pure helpers, in Deno (no DOM needed). */
import assert from "node:assert/strict";
import {
  avatarColor,
  clock,
  displayName,
  errorText,
  initials,
  messageText,
  ROOM_PATTERN,
  roomProblem,
  typedRoom,
  typingText,
} from "../static/chat/format.js";
import { ROOM_PATTERN as SERVER_ROOM_PATTERN } from "../lib/protocol.ts";

Deno.test("chat page helpers", async (t) => {
  await t.step("messageText: the text field, a string, else JSON; never throws", () => {
    assert.equal(messageText({ text: "hi", other: 1 }), "hi");
    assert.equal(messageText("plain"), "plain");
    assert.equal(messageText({ n: 1 }), '{"n":1}');
    assert.equal(messageText(null), "null");
    assert.equal(messageText(undefined), "undefined");
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal(messageText(cyclic), "[object Object]");
    assert.equal(messageText({ text: 5 }), '{"text":5}');
  });

  await t.step("initials and avatar colours", () => {
    assert.equal(initials("ann lee"), "AL");
    assert.equal(initials("  bo  "), "B");
    assert.equal(initials(""), "?");
    assert.equal(initials("éric 😀x"), "É😀");
    assert.equal(avatarColor("u1"), avatarColor("u1"));
    const colours = new Set(Array.from({ length: 200 }, (_, i) => avatarColor(`user-${i}`)));
    assert.ok([...colours].every((c) => /^color-[0-7]$/.test(c)));
    assert.equal(colours.size, 8);
  });

  await t.step("names, clock, typing line", () => {
    assert.equal(displayName({ id: "u1", name: "Ann" }), "Ann");
    assert.equal(displayName({ id: "u1", name: "" }), "u1");
    assert.equal(displayName(null), "Someone");
    assert.equal(clock(new Date(2026, 0, 2, 3, 4)), "03:04");
    assert.equal(typingText([]), "");
    assert.equal(typingText(["Ann"]), "Ann is typing…");
    assert.equal(typingText(["Ann", "Bo"]), "Ann and Bo are typing…");
    assert.equal(typingText(["A", "B", "C"]), "A, B and C are typing…");
    assert.equal(typingText(["A", "B", "C", "D"]), "Several people are typing…");
  });

  await t.step("room names: the server's rule, a leading # dropped", () => {
    assert.equal(ROOM_PATTERN.source, SERVER_ROOM_PATTERN.source, "the page checks what lib/protocol.ts checks");
    assert.equal(typedRoom("  #lobby "), "lobby");
    assert.equal(roomProblem("lobby"), "");
    assert.equal(roomProblem("team:dev@x.y-1_2"), "");
    assert.equal(roomProblem(""), "Enter a room name.");
    assert.match(roomProblem("two words"), /no spaces/);
    assert.match(roomProblem("x".repeat(129)), /1–128/);
  });

  await t.step("error codes in words, unknown ones by their message", () => {
    assert.match(errorText({ code: "rate_limited" }), /too fast/);
    assert.match(errorText({ code: "timeout" }), /didn't answer/);
    assert.equal(errorText({ code: "weird", message: "Weird thing" }), "Weird thing");
    assert.equal(errorText("plain"), "plain");
  });
});
