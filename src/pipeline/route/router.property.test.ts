import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import type { RouteConfig } from '../../config/schema.js'
import { compileRoute, Router, type CompiledRoute, type RouteMatch } from './router.js'

// The router against a reference written the slow way: every route's pattern is tried on the path,
// and the most specific match wins, compared segment by segment (a literal before ":name" or "*",
// both before a trailing "/**"; a pattern that ends with the path before one whose "/**" does).
// Which route matches decides which auth, scopes and limits apply, so the trie's backtracking
// must agree with the rule on every generated route table and path.

const METHODS = ['GET', 'POST', 'DELETE'] as const

const routeSpec = fc.record({
  segments: fc.array(fc.constantFrom('a', 'b', ':p', '*'), { maxLength: 3 }),
  end: fc.constantFrom('', '/', '/**'),
  methods: fc.subarray([...METHODS], { minLength: 1 }),
})
const pathOf = (segments: readonly string[], end: string) => {
  const p = '/' + segments.join('/')
  if (end === '/**') return segments.length === 0 ? '/**' : `${p}/**`
  return end === '/' && segments.length > 0 ? `${p}/` : p
}

const requestPath = fc
  .tuple(fc.array(fc.constantFrom('a', 'b', 'c'), { maxLength: 4 }), fc.boolean())
  .map(([segments, slash]) => (segments.length === 0 ? '/' : '/' + segments.join('/') + (slash ? '/' : '')))

/** Per segment: 0 literal, 1 one-segment wildcard, 2 the rest; null when the pattern does not match. */
function rankOf(pattern: string, path: string): number[] | null {
  const p = pattern === '/' ? [] : pattern.split('/').slice(1)
  const s = path === '/' ? [] : path.split('/').slice(1)
  const rest = p.at(-1) === '**'
  const fixed = rest ? p.slice(0, -1) : p
  if (rest ? s.length < fixed.length : s.length !== fixed.length) return null
  const rank: number[] = []
  for (let i = 0; i < fixed.length; i++) {
    if (fixed[i] === '*' || fixed[i].startsWith(':')) {
      if (s[i] === '') return null
      rank.push(1)
    } else if (fixed[i] === s[i]) rank.push(0)
    else return null
  }
  // Ending exactly (0) beats a rest that matches from here (2).
  rank.push(rest ? 2 : 0)
  return rank
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i] - b[i]
  return a.length - b.length
}

function reference(routes: readonly CompiledRoute[], path: string, method: string): string {
  let best: number[] | undefined
  let candidates: CompiledRoute[] = []
  for (const route of routes) {
    const rank = rankOf(route.pattern, path)
    if (rank === null) continue
    const order = best === undefined ? -1 : compare(rank, best)
    if (order < 0) {
      best = rank
      candidates = [route]
    } else if (order === 0 && shape(route.pattern) === shape(candidates[0].pattern)) candidates.push(route)
  }
  if (candidates.length === 0) return '404'
  const hit = candidates.find((r) => r.methods.has(method))
  if (hit !== undefined) return hit.id
  return `405:${[...new Set(candidates.flatMap((r) => [...r.methods]))].sort().join(',')}`
}
const shape = (pattern: string) => pattern.replace(/\/(?::[^/]+|\*)(?=\/|$)/g, '/*')

function hit(m: RouteMatch): string {
  if (m.kind === 'match') return m.route.id
  if (m.kind === 'method') return `405:${m.allow.split(', ').sort().join(',')}`
  return '404'
}

test('the router picks the route the specificity rule picks, or the same 404 / 405 with the same Allow', () => {
  fc.assert(
    fc.property(fc.array(routeSpec, { minLength: 1, maxLength: 8 }), fc.array(requestPath, { minLength: 1, maxLength: 8 }), fc.constantFrom(...METHODS, 'HEAD'), (specs, paths, method) => {
      const routes = specs.map((s, i) => compileRoute({ id: `r${i}`, path: pathOf(s.segments, s.end), methods: s.methods, upstream: 'u', auth: 'public' } as RouteConfig, i))
      const router = new Router(routes)
      for (const path of paths) assert.equal(hit(router.match(path, method)), reference(routes, path, method), `${path} ${method} over ${routes.map((r) => `${r.id}=${[...r.methods].join('+')} ${r.pattern}`).join(', ')}`)
    }),
    { numRuns: 5000 },
  )
})
