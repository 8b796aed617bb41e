import { routeId, routeMethods } from '../../config/route-pattern.js'
import type { RouteConfig } from '../../config/schema.js'
import { admittedName } from '../authn/certificate.js'
import { compileCors, type CompiledCors } from './cors.js'
import { HostTable, requestHostName, routeHostGroups } from './hosts.js'

export interface CompiledRoute {
  readonly id: string
  readonly pattern: string
  /** The host names (canonical, `*.` for a wildcard) whose requests this route serves; undefined: every host that has no routes of its own. */
  readonly hosts: readonly string[] | undefined
  readonly methods: ReadonlySet<string>
  readonly auth: 'required' | 'public' | 'certificate'
  /** auth: certificate: the certificate names admitted (authn/certificate.ts admittedName). */
  readonly certificates: ReadonlySet<string> | undefined
  /** Issuer ids this route accepts; undefined = every configured issuer. */
  readonly issuers: ReadonlySet<string> | undefined
  readonly allOf: readonly string[]
  readonly anyOf: readonly string[]
  /** Precomputed RFC 6750 `scope` text for insufficient_scope challenges. */
  readonly requiredScopeText: string
  readonly upstreamId: string
  readonly stripPrefix: string | undefined
  /** WebSocket handshakes may open a tunnel through this route (forward/tunnel.ts). */
  readonly websocket: boolean
  /** A handshake's bearer token may come as a Sec-WebSocket-Protocol element (http/websocket.ts). */
  readonly websocketTokenProtocol: boolean
  /** gRPC-Web calls are translated to gRPC towards the upstream (forward/grpc-web.ts). */
  readonly grpcWeb: boolean
  /** The route's CORS policy (cors.ts), when it has one. */
  readonly cors: CompiledCors | undefined
  /** upstreamTimeouts: the route's own, or undefined for the upstream's. */
  readonly headersTimeoutMs: number | undefined
  readonly bodyTimeoutMs: number | undefined
  /** An HTTP/2 stream's time to send its whole request on this route, in place of server.requestTimeoutMs. */
  readonly http2RequestTimeoutMs: number | undefined
}

export type RouteMatch =
  | { readonly kind: 'match'; readonly route: CompiledRoute }
  | { readonly kind: 'method'; readonly allow: string; /** The first route (in config order) on this path, which records name. */ readonly route: CompiledRoute }
  | { readonly kind: 'none' }

interface Node {
  readonly literal: Map<string, Node>
  param: Node | undefined
  /** Routes that end exactly at this node. */
  readonly here: CompiledRoute[]
  /** Routes whose pattern ends with /** at this node (match zero or more further segments). */
  readonly rest: CompiledRoute[]
}

const newNode = (): Node => ({ literal: new Map(), param: undefined, here: [], rest: [] })
const NONE: RouteMatch = { kind: 'none' }

export function compileRoute(r: RouteConfig, index: number): CompiledRoute {
  const allOf = r.scopes?.allOf ?? []
  const anyOf = r.scopes?.anyOf ?? []
  return Object.freeze({
    id: routeId(r, index),
    pattern: r.path,
    hosts: r.hosts === undefined ? undefined : routeHostGroups(r.hosts),
    methods: new Set(routeMethods(r.methods)),
    auth: r.auth,
    certificates: r.certificates ? new Set(r.certificates.map(admittedName)) : undefined,
    issuers: r.issuers ? new Set(r.issuers) : undefined,
    allOf,
    anyOf,
    requiredScopeText: [...allOf, ...anyOf].join(' '),
    upstreamId: r.upstream,
    stripPrefix: r.stripPrefix,
    websocket: r.websocket === true,
    websocketTokenProtocol: r.websocketTokenProtocol === true,
    grpcWeb: r.grpcWeb === true,
    cors: r.cors === undefined ? undefined : compileCors(r.cors, routeMethods(r.methods)),
    headersTimeoutMs: r.upstreamTimeouts?.headersMs,
    bodyTimeoutMs: r.upstreamTimeouts?.bodyMs,
    http2RequestTimeoutMs: r.http2RequestTimeoutMs,
  })
}

const ROOT_SEGMENTS = ['']
/**
 * Splits a pattern or a canonical path at its slashes; segments start at index 1 (index 0 is the
 * empty text before the leading slash, not copied away). "/" → [""] (no segment); "/a/b" →
 * ["", "a", "b"]. A trailing slash is its own (empty) segment, so /a and /a/ are different routes.
 */
function segments(path: string): string[] {
  return path === '/' ? ROOT_SEGMENTS : path.split('/')
}

/**
 * The routes of one host group (hosts.ts), or of every request when no route names a host: the
 * group a request's Host selects, then its path and method (PathTrie).
 */
export class Router {
  readonly routes: readonly CompiledRoute[]
  /** undefined when no route names a host: then every request goes to the one trie, Host unread. */
  private readonly hosts: HostTable<PathTrie> | undefined
  private readonly all: PathTrie

  constructor(routes: readonly CompiledRoute[]) {
    this.routes = routes
    this.all = new PathTrie()
    const hosts = routes.some((r) => r.hosts !== undefined) ? new HostTable(this.all) : undefined
    for (const route of routes) {
      if (route.hosts === undefined || hosts === undefined) this.all.insert(route)
      else for (const h of route.hosts) hosts.groupFor(h, () => new PathTrie()).insert(route)
    }
    this.hosts = hosts
  }

  /** `host`: the request's Host value as it came (port and letter case included), if any. */
  match(path: string, method: string, host?: string): RouteMatch {
    const trie = this.hosts === undefined ? this.all : this.hosts.select(requestHostName(host))
    return trie === undefined ? NONE : trie.match(path, method)
  }
}

/**
 * A segment trie built once at config load. Matching walks it without allocating per request
 * beyond the split. Precedence: literal segment > one-segment wildcard > trailing /**; routes that
 * share a path differ by method (which gives scopes per route and method).
 */
class PathTrie {
  private readonly root = newNode()

  insert(route: CompiledRoute): void {
    let node = this.root
    const segs = segments(route.pattern)
    for (let i = 1; i < segs.length; i++) {
      const seg = segs[i]
      if (seg === '**' && i === segs.length - 1) {
        node.rest.push(route)
        return
      }
      if (seg === '*' || seg.startsWith(':')) {
        node.param ??= newNode()
        node = node.param
      } else {
        let next = node.literal.get(seg)
        if (!next) {
          next = newNode()
          node.literal.set(seg, next)
        }
        node = next
      }
    }
    node.here.push(route)
  }

  match(path: string, method: string): RouteMatch {
    const candidates = this.find(this.root, segments(path), 1)
    if (!candidates) return NONE
    for (const r of candidates) if (r.methods.has(method)) return { kind: 'match', route: r }
    const allow = new Set<string>()
    for (const r of candidates) for (const m of r.methods) allow.add(m)
    return { kind: 'method', allow: [...allow].join(', '), route: candidates[0] }
  }

  /** Returns the route list of the most specific node that matches the path, or undefined. */
  private find(node: Node, segs: string[], i: number): CompiledRoute[] | undefined {
    if (i === segs.length) {
      if (node.here.length) return node.here
      return node.rest.length ? node.rest : undefined
    }
    const lit = node.literal.get(segs[i])
    if (lit) {
      const found = this.find(lit, segs, i + 1)
      if (found) return found
    }
    if (node.param && segs[i] !== '') {
      const found = this.find(node.param, segs, i + 1)
      if (found) return found
    }
    return node.rest.length ? node.rest : undefined
  }
}
