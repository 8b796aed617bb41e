/**
 * The bounded key table of the memory store: a Map kept in least-recently-written order (a write
 * re-inserts the key at the end), with two ways out for a key:
 * - expiry: each slot knows when it becomes idle (a full GCRA bucket, an ended quota window, a
 *   drained failure score). A cursor walks the table a few entries per write and drops idle
 *   slots, so idle keys go without a timer and without a stop-the-world sweep;
 * - eviction: at maxKeys, the least recently written slot goes, even if live. Forgetting a live
 *   key only makes that key's limit start afresh (fail open for that key); refusing new keys
 *   instead would let anyone who can spray addresses deny service to every new client.
 */
export class Slot {
  /** rate: TAT (µs) · quota: window start (ms) · guard: failure TAT (µs) */
  a = 0
  /** quota: count · guard: blocked until (ms) */
  b = 0
  /** Time (ms) after which the slot holds nothing worth keeping. */
  exp = 0
  /** guard: the block is a lockout */
  locked = false
  /** concurrency: lease id → lease expiry (ms) */
  leases: Map<string, number> | undefined = undefined
}

export interface SlotTableStats {
  readonly size: number
  /** Live slots dropped because the table was full. */
  readonly evicted: number
  /** Idle slots dropped by the sweep or on access. */
  readonly expired: number
}

/** Entries examined by the sweep per write: enough to outpace inserts, small enough to be free. */
const SWEEP_PER_WRITE = 2

export class SlotTable {
  private readonly map = new Map<string, Slot>()
  private cursor: Iterator<[string, Slot]> | undefined
  private evicted = 0
  private expired = 0

  constructor(readonly maxKeys: number) {
    if (!(maxKeys >= 1)) throw new RangeError('maxKeys must be at least 1')
  }

  get size(): number {
    return this.map.size
  }

  /** The live slot of a key, or undefined (an idle slot found here is dropped). */
  get(key: string, nowMs: number): Slot | undefined {
    const slot = this.map.get(key)
    if (slot === undefined) return undefined
    if (slot.exp <= nowMs) {
      this.map.delete(key)
      this.expired++
      return undefined
    }
    return slot
  }

  /** The slot of a key whatever its expiry (for removing a lease: no clock needed). */
  peek(key: string): Slot | undefined {
    return this.map.get(key)
  }

  /** Stores a slot as most recently written, evicting the least recently written one when full. */
  put(key: string, slot: Slot, nowMs: number): void {
    if (!this.map.delete(key) && this.map.size >= this.maxKeys) this.evictOne(nowMs)
    this.map.set(key, slot)
    this.sweep(nowMs, SWEEP_PER_WRITE)
  }

  delete(key: string): void {
    this.map.delete(key)
  }

  /** Drops idle slots among the next `budget` entries of the rolling cursor. */
  sweep(nowMs: number, budget: number): void {
    for (let i = 0; i < budget; i++) {
      if (this.cursor === undefined) this.cursor = this.map.entries()
      const next = this.cursor.next()
      if (next.done) {
        this.cursor = undefined
        return
      }
      if (next.value[1].exp <= nowMs) {
        this.map.delete(next.value[0])
        this.expired++
      }
    }
  }

  stats(): SlotTableStats {
    return { size: this.map.size, evicted: this.evicted, expired: this.expired }
  }

  private evictOne(nowMs: number): void {
    const first = this.map.entries().next()
    if (first.done) return
    this.map.delete(first.value[0])
    if (first.value[1].exp <= nowMs) this.expired++
    else this.evicted++
  }
}
