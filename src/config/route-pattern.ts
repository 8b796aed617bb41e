/**
 * Route path pattern syntax, checked at load so the router (pipeline/route/router.ts) only ever
 * sees patterns it understands:
 *   literal   a path segment (no "*", no "?" or "#", not "." or "..")
 *   :name     one segment, named (letters, digits, "_")
 *   *         one segment
 *   **        any rest of the path (zero or more segments); only as the last segment
 * A trailing slash is an empty last segment, so "/a" and "/a/" are different routes.
 */
const PARAM = /^:[A-Za-z_][A-Za-z0-9_]*$/
// RFC 3986 §3.3 pchar, plus "%" for pct-encoded octets. "?" and "#" end a path; they can never match.
const LITERAL = /^[A-Za-z0-9\-._~!$&'()+,;=:@%]+$/

/** Returns why a pattern is invalid, or undefined when it is fine. */
export function patternProblem(pattern: string): string | undefined {
  if (!pattern.startsWith('/')) return 'must start with "/"'
  if (pattern === '/') return undefined
  const segs = pattern.slice(1).split('/')
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]
    const last = i === segs.length - 1
    if (seg === '') {
      if (last) continue // trailing slash
      return 'has an empty segment ("//")'
    }
    if (seg === '**') {
      if (!last) return '"**" is only allowed as the last segment'
      continue
    }
    if (seg === '*') continue
    if (seg.startsWith(':')) {
      if (!PARAM.test(seg)) return `segment "${seg}": a parameter is ":" followed by letters, digits or "_"`
      continue
    }
    if (seg.includes('*')) return `segment "${seg}": "*" must be a whole segment ("*" or "**"), not part of one`
    if (seg === '.' || seg === '..') return `segment "${seg}": dot segments never match a normalized path (RFC 3986 §5.2.4)`
    if (!LITERAL.test(seg)) return `segment "${seg}" contains a character that is not allowed in a path (RFC 3986 §3.3)`
  }
  return undefined
}

/**
 * Whether a pattern matches a concrete path without the help of a "**" rest segment. Patterns
 * that end in "**" are deliberately broad; the gateway's own health paths are carved out of them.
 */
export function matchesExactly(pattern: string, path: string): boolean {
  const p = pattern === '/' ? [] : pattern.slice(1).split('/')
  const s = path === '/' ? [] : path.slice(1).split('/')
  if (p[p.length - 1] === '**' || p.length !== s.length) return false
  return p.every((seg, i) => seg === s[i] || ((seg === '*' || seg.startsWith(':')) && s[i] !== ''))
}

/** A key equal for patterns that match the same paths (":id" and "*" are the same thing). */
export function patternShape(pattern: string): string {
  return pattern
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '*' : seg))
    .join('/')
}

/** A route's id: its own, else `route-<index>`. Every table keyed by route (limits, internal tokens) uses this. */
export function routeId(route: { readonly id?: string }, index: number): string {
  return route.id ?? `route-${index}`
}

/** The methods a route answers: its own, plus HEAD when it has GET (RFC 9110 §9.3.2). */
export function routeMethods(methods: readonly string[]): readonly string[] {
  return methods.includes('GET') && !methods.includes('HEAD') ? [...methods, 'HEAD'] : methods
}
