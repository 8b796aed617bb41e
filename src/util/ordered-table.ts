/**
 * A node of an OrderedTable: the caller's own object (intrusive links), so a table of a million
 * entries needs no second object per entry.
 */
export interface OrderedNode<K, N> {
  key: K
  older: N | undefined
  newer: N | undefined
}

/** A node that carries a value, for tables whose values cannot carry links themselves. */
export interface Entry<K, V> extends OrderedNode<K, Entry<K, V>> {
  value: V
}

export function entry<K, V>(key: K, value: V): Entry<K, V> {
  return { key, value, older: undefined, newer: undefined }
}

/**
 * A Map whose entries also form a list from oldest to newest, so that the oldest entry is found
 * and removed in constant time, whatever was deleted before.
 *
 * Why not a Map's own insertion order (`map.keys().next()` for the oldest): V8 leaves every deleted
 * entry as a hole in the table until its next rehash, and each new iterator steps over all the
 * holes before the first live entry. Evicting the oldest entry that way costs time proportional
 * to the holes, up to the table's capacity: measured on a full table of 10,000 keys about 11 µs
 * per eviction, of 1,000,000 keys about 240 µs, so a client sending new keys (addresses, token
 * digests) could make every request cost that much.
 */
export class OrderedTable<K, N extends OrderedNode<K, N>> {
  private readonly map = new Map<K, N>()
  private oldestNode: N | undefined = undefined
  private newestNode: N | undefined = undefined
  /** The next node step() returns; undefined: start again at the oldest. */
  private cursor: N | undefined = undefined

  get size(): number {
    return this.map.size
  }

  get(key: K): N | undefined {
    return this.map.get(key)
  }

  /** Adds `node` as the newest entry under `node.key`, replacing (and unlinking) any entry of that key. */
  add(node: N): void {
    const previous = this.map.get(node.key)
    if (previous !== undefined) this.unlink(previous)
    this.map.set(node.key, node)
    this.append(node)
  }

  /** Moves an entry of this table to the newest end. */
  touch(node: N): void {
    if (this.newestNode === node) return
    this.unlink(node)
    this.append(node)
  }

  /** Removes the entry of `key`; returns it, or undefined when there was none. */
  delete(key: K): N | undefined {
    const node = this.map.get(key)
    if (node === undefined) return undefined
    this.map.delete(key)
    this.unlink(node)
    return node
  }

  /** Removes and returns the oldest entry. */
  shift(): N | undefined {
    const node = this.oldestNode
    if (node !== undefined) this.delete(node.key)
    return node
  }

  /**
   * A rolling walk from oldest to newest, one entry per call, wrapping around to the oldest after
   * the newest: for sweeps spread over many calls. Removing or moving entries between calls is
   * allowed. Undefined only when the table is empty.
   */
  step(): N | undefined {
    const node = this.cursor ?? this.oldestNode
    if (node !== undefined) this.cursor = node.newer
    return node
  }

  /** Entries from oldest to newest. Do not add or remove while iterating. */
  *[Symbol.iterator](): IterableIterator<N> {
    for (let node = this.oldestNode; node !== undefined; node = node.newer) yield node
  }

  clear(): void {
    this.map.clear()
    this.oldestNode = undefined
    this.newestNode = undefined
    this.cursor = undefined
  }

  private append(node: N): void {
    node.older = this.newestNode
    node.newer = undefined
    if (this.newestNode === undefined) this.oldestNode = node
    else this.newestNode.newer = node
    this.newestNode = node
  }

  private unlink(node: N): void {
    if (this.cursor === node) this.cursor = node.newer
    if (node.older === undefined) this.oldestNode = node.newer
    else node.older.newer = node.newer
    if (node.newer === undefined) this.newestNode = node.older
    else node.newer.older = node.older
    node.older = undefined
    node.newer = undefined
  }
}
