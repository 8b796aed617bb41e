import type { RouteConfig } from '../../config/schema.js'
import { compileRoute, Router, type CompiledRoute, type RouteMatch } from '../route/router.js'

/**
 * Paths are case-sensitive (RFC 3986 §6.2.2.1) and "/a" and "/a/" are different paths, so the
 * gateway matches routes exactly. Many upstreams do not: IIS, Windows file systems and some
 * framework settings ignore letter case, and Spring MVC (before 6.0) and others serve "/a/" with
 * the handler of "/a". Behind such an upstream, "/Admin/x" or "/admin/" could be authorized by a
 * weaker route (a catch-all, say) and still run the protected handler.
 *
 * So: when a path matches route R, the same path with letters lowercased and/or one trailing "/"
 * removed must match R as well (or no route at all). Otherwise the request is refused. A path
 * that matches no route is left to the route stage (404), and one with no uppercase letter and no
 * trailing "/" costs one scan when no route pattern has an uppercase letter.
 *
 * The variants are matched under the request's Host, in the host group (route/hosts.ts) it selects.
 *
 * @returns check(path, method, host): true when the path is unambiguous, false when it must be refused.
 */
export function createRouteAmbiguityCheck(routes: readonly RouteConfig[]): (path: string, method: string, host: string | undefined) => boolean {
  const exact = routes.map((r, i) => compileRoute(r, i))
  const folded = routes.map((r, i) => compileRoute({ ...r, path: r.path.toLowerCase() }, i))
  const indexOf = new Map<CompiledRoute, number>()
  exact.forEach((r, i) => indexOf.set(r, i))
  folded.forEach((r, i) => indexOf.set(r, i))
  const exactRouter = new Router(exact)
  const foldedRouter = new Router(folded)
  // Parameter names (":orderId") are not matched against anything, so only literal segments count.
  const patternsHaveUpper = routes.some((r) => r.path.split('/').some((seg) => !seg.startsWith(':') && hasUpper(seg)))

  /** Whether a variant of the path is governed by a route other than the one at index `want`. */
  const differs = (m: RouteMatch, want: number): boolean =>
    m.kind === 'method' || (m.kind === 'match' && indexOf.get(m.route) !== want)

  return function isUnambiguous(path: string, method: string, host: string | undefined): boolean {
    const fold = patternsHaveUpper || hasUpper(path)
    const slash = path.length > 1 && path.charCodeAt(path.length - 1) === 0x2f
    if (!fold && !slash) return true
    const m = exactRouter.match(path, method, host)
    if (m.kind !== 'match') return true
    const want = indexOf.get(m.route)!
    const stripped = slash ? path.slice(0, -1) : path
    if (slash && differs(exactRouter.match(stripped, method, host), want)) return false
    if (fold) {
      if (differs(foldedRouter.match(path.toLowerCase(), method, host), want)) return false
      if (slash && differs(foldedRouter.match(stripped.toLowerCase(), method, host), want)) return false
    }
    return true
  }
}

/** An ASCII uppercase letter outside a %XX escape (the hex digits of escapes are not letters of the path). */
function hasUpper(path: string): boolean {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i)
    if (c === 0x25) i += 2
    else if (c >= 0x41 && c <= 0x5a) return true
  }
  return false
}
