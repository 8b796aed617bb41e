import { createHash } from 'node:crypto'
import { isIPv4, isIPv6 } from 'node:net'

/**
 * How a request becomes a counter key. Keys are plain strings, readable in Redis
 * ("r:api:ip=203.0.113.7"), except that a value which is long or could be mistaken for a
 * separator is replaced by its digest: identity values come from tokens, and a key must never be
 * ambiguous (two clients sharing a counter) nor let a client choose how much memory it takes.
 */
const MAX_PLAIN = 96
const SAFE = /^[\x21-\x7e]*$/ // printable ASCII without spaces

/** A value fit to sit inside a key: itself when short and safe, else "#" + SHA-256 (base64url, 22 chars). */
export function keyValue(value: string): string {
  if (value.length <= MAX_PLAIN && SAFE.test(value) && !value.includes('|') && !value.startsWith('#')) return value
  return '#' + createHash('sha256').update(value).digest('base64url').slice(0, 22)
}

/**
 * `fn` with its answers remembered, for keys built on every request from a few recurring values
 * (the brute-force guard and per-address policies key every request by its client address): the
 * address is parsed and checked once, not per request, and a key used as it is (the guard's) is
 * the same string each time, so the store's map lookup does not hash a new one. Bounded: the memo
 * is emptied when it holds `max` entries, so a flood of new values costs what it cost without it.
 */
export function boundedMemo<T = string>(fn: (value: string) => T, max = 4096): (value: string) => T {
  let memo = new Map<string, T>()
  return (value) => {
    let out = memo.get(value)
    if (out === undefined) {
      if (memo.size >= max) memo = new Map()
      out = fn(value)
      memo.set(value, out)
    }
    return out
  }
}

/**
 * The address a limit counts: IPv4 as is; IPv6 truncated to its first `prefixLength` bits, since
 * one subscriber usually holds a whole /64 and could otherwise rotate addresses to escape any
 * per-address limit. An IPv4-mapped IPv6 address is its IPv4 address. Anything unparseable is
 * used as is (through keyValue).
 */
export function addressKey(ip: string, prefixLength: number): string {
  if (isIPv4(ip) || !isIPv6(ip)) return keyValue(ip)
  const groups = expandIPv6(ip)
  if (!groups) return keyValue(ip)
  // IPv4-mapped (::ffff:a.b.c.d, however it is spelled): one IPv4 client, not a slice of the
  // ::/64 that every mapped address would otherwise share.
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    return `${groups[6] >> 8}.${groups[6] & 0xff}.${groups[7] >> 8}.${groups[7] & 0xff}`
  }
  if (prefixLength >= 128) return groups.map((g) => g.toString(16)).join(':')
  const out: string[] = []
  for (let i = 0, bits = prefixLength; i < 8 && bits > 0; i++, bits -= 16) {
    out.push((bits >= 16 ? groups[i] : groups[i] & (0xffff << (16 - bits)) & 0xffff).toString(16))
  }
  return `${out.join(':')}::/${prefixLength}`
}

/** "2001:db8::1" → eight 16-bit numbers; handles "::", a zone id and a trailing dotted IPv4. */
export function expandIPv6(ip: string): number[] | undefined {
  let text = ip.split('%')[0]
  const lastColon = text.lastIndexOf(':')
  const dotted = text.slice(lastColon + 1)
  if (dotted.includes('.')) {
    if (!isIPv4(dotted)) return undefined
    const [a, b, c, d] = dotted.split('.').map(Number)
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`
  }
  const halves = text.split('::')
  if (halves.length > 2) return undefined
  const parse = (s: string) => (s === '' ? [] : s.split(':').map((h) => (/^[0-9a-fA-F]{1,4}$/.test(h) ? parseInt(h, 16) : NaN)))
  const head = parse(halves[0])
  const tail = halves.length === 2 ? parse(halves[1]) : []
  const fill = 8 - head.length - tail.length
  if (halves.length === 1 ? fill !== 0 : fill < 1) return undefined
  const groups = [...head, ...new Array<number>(halves.length === 2 ? fill : 0).fill(0), ...tail]
  return groups.every((g) => !Number.isNaN(g)) ? groups : undefined
}
