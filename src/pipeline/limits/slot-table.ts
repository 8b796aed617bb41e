import { OrderedTable, type OrderedNode } from '../../util/ordered-table.js'

/**
 * The bounded key table of the memory store: a table kept in least-recently-written order (a
 * write moves the key to the newest end; OrderedTable, so that eviction takes constant time),
 * with two ways out for a key:
 * - expiry: each slot knows when it becomes idle (a full GCRA bucket, an ended quota window, a
 *   drained failure score). A cursor walks the table a few entries per write and drops idle
 *   slots, so idle keys go without a timer and without a stop-the-world sweep;
 * - eviction: at maxKeys, the least recently written slot goes, even if live. Forgetting a live
 *   key only makes that key's limit start afresh (fail open for that key); refusing new keys
 *   instead would let anyone who can spray addresses deny service to every new client.
 */
export class Slot implements OrderedNode<string, Slot> {
  key = ''
  older: Slot | undefined = undefined
  newer: Slot | undefined = undefined
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
  private readonly table = new OrderedTable<string, Slot>()
  private evicted = 0
  private expired = 0

  constructor(readonly maxKeys: number) {
    if (!(maxKeys >= 1)) throw new RangeError('maxKeys must be at least 1')
  }

  get size(): number {
    return this.table.size
  }

  /** The live slot of a key, or undefined (an idle slot found here is dropped). */
  get(key: string, nowMs: number): Slot | undefined {
    const slot = this.table.get(key)
    if (slot === undefined) return undefined
    if (slot.exp <= nowMs) {
      this.table.delete(key)
      this.expired++
      return undefined
    }
    return slot
  }

  /** The slot of a key whatever its expiry (for removing a lease: no clock needed). */
  peek(key: string): Slot | undefined {
    return this.table.get(key)
  }

  /** Stores a slot as most recently written, evicting the least recently written one when full. */
  put(key: string, slot: Slot, nowMs: number): void {
    const current = this.table.get(key)
    if (current === slot) this.table.touch(slot)
    else {
      if (current === undefined && this.table.size >= this.maxKeys) this.evictOne(nowMs)
      slot.key = key
      this.table.add(slot)
    }
    this.sweep(nowMs, SWEEP_PER_WRITE)
  }

  delete(key: string): void {
    this.table.delete(key)
  }

  /** Drops idle slots among the next `budget` entries of a rolling walk over the table. */
  sweep(nowMs: number, budget: number): void {
    for (let i = 0; i < budget; i++) {
      const slot = this.table.step()
      if (slot === undefined) return
      if (slot.exp <= nowMs) {
        this.table.delete(slot.key)
        this.expired++
      }
    }
  }

  stats(): SlotTableStats {
    return { size: this.table.size, evicted: this.evicted, expired: this.expired }
  }

  private evictOne(nowMs: number): void {
    const oldest = this.table.shift()
    if (oldest === undefined) return
    if (oldest.exp <= nowMs) this.expired++
    else this.evicted++
  }
}
