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
