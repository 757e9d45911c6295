import assert from "node:assert/strict";
import { type Few, fewAdd, fewDelete, fewHas, fewSize, fewValues } from "./few.ts";

Deno.test("few: one member is held as itself, two or more as a Set, and back", () => {
  let few: Few<string> | undefined = fewAdd(undefined, "a");
  assert.equal(few, "a");
  assert.equal(fewAdd(few, "a"), "a", "adding the member again changes nothing");
  few = fewAdd(few, "b");
  assert.ok(few instanceof Set);
  few = fewAdd(few, "c");
  assert.deepEqual(fewValues(few), ["a", "b", "c"]);
  assert.equal(fewSize(few), 3);
  assert.ok(fewHas(few, "b") && !fewHas(few, "z"));
  few = fewDelete(few, "z");
  assert.equal(fewSize(few), 3, "deleting a stranger changes nothing");
  few = fewDelete(few, "a");
  assert.ok(few instanceof Set && few.size === 2);
  few = fewDelete(few, "c");
  assert.equal(few, "b", "one left: held as itself again");
  assert.equal(fewDelete(few, "z"), "b");
  few = fewDelete(few, "b");
  assert.equal(few, undefined);
  assert.equal(fewSize(few), 0);
  assert.deepEqual(fewValues(few), []);
  assert.ok(!fewHas(few, "b"));
});
