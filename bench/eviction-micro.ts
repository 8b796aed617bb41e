/**
 * Micro-benchmark of the bounded tables a client can fill with new keys: the memory limit store's
 * slot table and the verified-token cache's "seen" doorkeeper. Each table is filled to its bound,
 * then every insert brings a new key and evicts the oldest, as under a flood of new client
 * addresses or new tokens. For comparison, the same workload on a Map that finds its oldest entry
 * through its own insertion order (`keys().next()`), which is what these tables did before.
 *
 *   npx tsc -p . && node dist/bench/eviction-micro.js
 *
 * What to look for: the time per insert should barely grow with the table's size. The Map-order
 * reference grows with it, because V8 keeps each deleted entry as a hole that every new iterator
 * steps over until the table is rehashed. Not a test: figures depend on the machine and its load.
 */
import { Slot, SlotTable } from '../src/pipeline/limits/slot-table.js'
import { TokenCache } from '../src/pipeline/authn/token-cache.js'
import type { Identity } from '../src/pipeline/stage.js'

const INSERTS = 200_000
const NOW = 1_000
const FAR = 1e12

function nsPerInsert(fill: (i: number) => void, insert: (i: number) => void, size: number): number {
  for (let i = 0; i < size; i++) fill(i)
  const started = process.hrtime.bigint()
  for (let i = 0; i < INSERTS; i++) insert(i)
  return Number(process.hrtime.bigint() - started) / INSERTS
}

function slotTable(size: number): number {
  const table = new SlotTable(size)
  const put = (key: string) => {
    const slot = new Slot()
    slot.exp = FAR
    table.put(key, slot, NOW)
  }
  return nsPerInsert((i) => put(`r:per-ip:ip=old-${i}`), (i) => put(`r:per-ip:ip=new-${i}`), size)
}

/** The previous design: a Map in write order, its first key evicted when full. */
function mapOrder(size: number): number {
  const map = new Map<string, Slot>()
  const put = (key: string) => {
    const slot = new Slot()
    slot.exp = FAR
    if (!map.delete(key) && map.size >= size) map.delete(map.keys().next().value as string)
    map.set(key, slot)
  }
  return nsPerInsert((i) => put(`r:per-ip:ip=old-${i}`), (i) => put(`r:per-ip:ip=new-${i}`), size)
}

function seenDigests(size: number): number {
  const cache = new TokenCache(size)
  const identity = { issuerId: 'bench', expiresAt: FAR } as Identity
  // A digest seen once is only remembered: each new token evicts the oldest remembered digest.
  return nsPerInsert((i) => cache.admit(`old-${i}`, identity, NOW), (i) => cache.admit(`new-${i}`, identity, NOW), size)
}

const rows: Array<[string, (size: number) => number, number[]]> = [
  ['memory store slot table', slotTable, [10_000, 100_000, 1_000_000]],
  ['Map insertion order (before)', mapOrder, [10_000, 100_000, 1_000_000]],
  ['token cache, seen digests', seenDigests, [1_000, 10_000]],
]
console.log(`ns per insert of a new key into a full table (${INSERTS} inserts each), node ${process.version}`)
for (const [label, run, sizes] of rows) {
  for (const size of sizes) console.log(`${label.padEnd(32)} ${String(size).padStart(9)} keys  ${run(size).toFixed(0).padStart(8)} ns`)
}
