/**
 * A set kept as its only member while it has one (most users hold one connection): what an idle
 * connection costs then is no `Set` and its table, about 150 bytes. Members must not be Sets.
 */
export type Few<T> = T | Set<T>;

/** `few` with `item` added (a new value when it was one member or none). */
export function fewAdd<T>(few: Few<T> | undefined, item: T): Few<T> {
  if (few === undefined || few === item) return item;
  if (few instanceof Set) return few.add(item);
  return new Set([few, item]);
}

/** `few` without `item`: `undefined` once empty, the only member once one is left. */
export function fewDelete<T>(few: Few<T> | undefined, item: T): Few<T> | undefined {
  if (few === undefined || few === item) return undefined;
  if (!(few instanceof Set)) return few;
  few.delete(item);
  if (few.size !== 1) return few;
  const [only] = few as Set<T>;
  return only;
}

export function fewHas<T>(few: Few<T> | undefined, item: T): boolean {
  return few instanceof Set ? few.has(item) : few !== undefined && few === item;
}

export function fewSize<T>(few: Few<T> | undefined): number {
  return few instanceof Set ? few.size : few === undefined ? 0 : 1;
}

export function fewValues<T>(few: Few<T> | undefined): T[] {
  return few instanceof Set ? [...few] : few === undefined ? [] : [few];
}

/** Adds `item` to the `Few` that `map` holds under `key`. */
export function addTo<K, T>(map: Map<K, Few<T>>, key: K, item: T): void {
  map.set(key, fewAdd(map.get(key), item));
}

/** Removes `item` from the `Few` that `map` holds under `key`, and the key once it holds none. */
export function deleteFrom<K, T>(map: Map<K, Few<T>>, key: K, item: T): void {
  const few = map.get(key);
  const rest = fewDelete(few, item);
  if (rest === undefined) map.delete(key);
  else if (rest !== few) map.set(key, rest);
}
