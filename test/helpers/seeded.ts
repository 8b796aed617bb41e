/**
 * A seeded generator of integers in [0, n) (mulberry32): the same sequence for the same seed, so
 * that a randomized test, or the fuzzer, can be replayed.
 */
export function seededRandom(seed: number): (n: number) => number {
  let a = seed >>> 0
  return (n) => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n)
  }
}
