/**
 * Measures the heap taken by one million active keys in the memory store.
 *
 *   npx tsc -p . && node --expose-gc dist/src/pipeline/limits/measure-memory.js [count]
 *
 * Keys look like the stage's ("r:per-ip:ip=10.1.2.3"); each key holds live state (a GCRA TAT
 * in the future, or a quota counter of the current day), so nothing is evicted or swept.
 */
import { intervalUs } from './gcra.js'
import { createMemoryStore } from './memory-store.js'

const gc = (globalThis as { gc?: () => void }).gc
if (!gc) {
  console.error('run with node --expose-gc')
  process.exit(1)
}
const count = Number(process.argv[2] ?? 1_000_000)
const now = Date.UTC(2031, 0, 15, 12)
const ip = (i: number) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`

function measure(label: string, check: (i: number) => Parameters<ReturnType<typeof createMemoryStore>['check']>[0]): void {
  gc!()
  const before = process.memoryUsage().heapUsed
  const store = createMemoryStore({ maxKeys: count + 1 })
  for (let i = 0; i < count; i++) store.check(check(i), now)
  gc!()
  const after = process.memoryUsage().heapUsed
  const size = store.stats().size
  const mb = (after - before) / 1024 / 1024
  console.log(`${label}: ${size} keys, ${mb.toFixed(0)} MiB heap, ${((after - before) / size).toFixed(0)} bytes per key`)
}

measure('rate (GCRA) keys', (i) => [{ kind: 'rate', key: `r:per-ip:ip=${ip(i)}`, intervalUs: intervalUs(100, 60), burst: 100 }])
measure('daily quota keys', (i) => [{ kind: 'quota', key: `q:per-client:day:client=${ip(i)}`, limit: 1000, period: 'day' }])
