/**
 * Case-insensitive header-name matching, compiled once at config load: a Set for exact names and
 * the prefixes (entries ending in `*`) grouped by their first character, so a header name is
 * compared only with the prefixes that could match it, however long the list. Names given to
 * `matches` must already be lowercase, as node's `req.headers` keys are.
 */
export interface HeaderMatcher {
  readonly exact: ReadonlySet<string>
  readonly prefixes: readonly string[]
  matches(lowercaseName: string): boolean
}

export function createHeaderMatcher(patterns: Iterable<string>): HeaderMatcher {
  const exact = new Set<string>()
  const prefixes: string[] = []
  for (const raw of patterns) {
    const p = raw.trim().toLowerCase()
    if (p === '') continue
    if (p.endsWith('*')) {
      const prefix = p.slice(0, -1)
      // A bare "*" would strip every header, content-type included: refuse it loudly.
      if (prefix === '') throw new Error('identity.stripHeaders: "*" alone would strip every header')
      if (!prefixes.includes(prefix)) prefixes.push(prefix)
    } else {
      exact.add(p)
    }
  }
  // An exact name covered by a prefix is redundant; drop it so each header is checked once.
  for (const name of [...exact]) if (prefixes.some((p) => name.startsWith(p))) exact.delete(name)
  // Header names are RFC 9110 tokens, so their first character is ASCII (below 128).
  const byFirst: (string[] | undefined)[] = new Array(128).fill(undefined)
  for (const prefix of prefixes) (byFirst[prefix.charCodeAt(0)] ??= []).push(prefix)
  return {
    exact,
    prefixes,
    matches(name: string): boolean {
      if (exact.has(name)) return true
      const candidates = byFirst[name.charCodeAt(0)]
      if (candidates === undefined) return false
      for (let i = 0; i < candidates.length; i++) if (name.startsWith(candidates[i])) return true
      return false
    },
  }
}
