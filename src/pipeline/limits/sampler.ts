import { OrderedTable, type OrderedNode } from '../../util/ordered-table.js'

/**
 * Sampling of limits.exceeded events, so that a flood of denied requests cannot flood the event
 * log (which would turn the limiter into a disk-filling amplifier). Per key (e.g. client address)
 * at most `perKeyPerSec` events per second are emitted, and at most `maxPerSec` overall (a
 * distributed flood has many keys). Suppressed events are counted, and the next event emitted
 * for the key carries how many of its events were suppressed before it, so nothing is silently lost.
 */
export interface EventSampler {
  /**
   * -1: suppress this event. Otherwise emit it; the value is the number of this key's events
   * suppressed since its last emitted one (put it in the event as `suppressed`).
   */
  sample(key: string, nowMs: number): number
  stats(): { readonly emitted: number; readonly suppressed: number }
}

export interface SamplerOptions {
  readonly perKeyPerSec: number
  /** Ceiling over all keys per second. */
  readonly maxPerSec?: number
  /** Keys remembered; beyond, the least recently seen are forgotten (their pending counts too). */
  readonly maxKeys?: number
}

interface Entry extends OrderedNode<string, Entry> {
  second: number
  count: number
  suppressed: number
}

export function createEventSampler(o: SamplerOptions): EventSampler {
  const perKey = o.perKeyPerSec
  const maxPerSec = o.maxPerSec ?? 100
  const maxKeys = o.maxKeys ?? 10_000
  const entries = new OrderedTable<string, Entry>()
  let globalSecond = -1
  let globalCount = 0
  let emitted = 0
  let suppressed = 0

  return {
    sample(key, nowMs) {
      const second = Math.floor(nowMs / 1000)
      let e = entries.get(key)
      if (e === undefined) {
        // The least recently seen key goes, in constant time (a flood of new keys is what this bounds).
        if (entries.size >= maxKeys) entries.shift()
        e = { key, older: undefined, newer: undefined, second, count: 0, suppressed: 0 }
        entries.add(e)
      } else {
        entries.touch(e) // most recently seen last
        if (e.second !== second) {
          e.second = second
          e.count = 0
        }
      }
      if (globalSecond !== second) {
        globalSecond = second
        globalCount = 0
      }
      if (e.count >= perKey || globalCount >= maxPerSec) {
        e.suppressed++
        suppressed++
        return -1
      }
      e.count++
      globalCount++
      emitted++
      const carried = e.suppressed
      e.suppressed = 0
      return carried
    },
    stats: () => ({ emitted, suppressed }),
  }
}
