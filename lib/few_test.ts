import assert from "node:assert/strict";
import { addTo, deleteFrom, type Few, fewAdd, fewDelete, fewHas, fewSize, fewValues } from "./few.ts";

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

Deno.test("few: in a map, a key holds its members until the last is deleted", () => {
  const map = new Map<string, Few<string>>();
  addTo(map, "ann", "c1");
  assert.equal(map.get("ann"), "c1");
  addTo(map, "ann", "c2");
  assert.deepEqual(fewValues(map.get("ann")), ["c1", "c2"]);
  deleteFrom(map, "ann", "c1");
  assert.equal(map.get("ann"), "c2");
  deleteFrom(map, "ann", "ghost");
  deleteFrom(map, "bob", "c1");
  assert.deepEqual([...map.keys()], ["ann"], "deleting what is not there changes nothing");
  deleteFrom(map, "ann", "c2");
  assert.equal(map.has("ann"), false);
});
