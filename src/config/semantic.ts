import { isIPv4, isIPv6 } from 'node:net'
import { X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { parseTrustedProxies } from '../http/client-address.js'
import { issuerFromDiscoveryUrl } from '../pipeline/authn/issuer.js'
import { showValue } from './env-refs.js'
import { canonicalHostName, routeHostGroups } from '../pipeline/route/hosts.js'
import { matchesExactly, patternProblem, patternShape, routeId, routeMethods } from './route-pattern.js'
import { ServerSchema, type Config, type ListenerTlsConfig, type UpstreamConfig } from './schema.js'
import { limitsSemanticIssues } from '../pipeline/limits/config.js'
import { internalTokensIssues } from '../tokens/config-checks.js'

/**
 * Checks that need more than one field at a time: references between sections, unique ids, and
 * syntax the JSON Schema cannot say. Runs on a config that passed the schema (defaults applied).
 */
export interface SemanticIssue {
  readonly path: string
  readonly message: string
}

export const HMAC_ALGORITHMS: ReadonlySet<string> = new Set(['HS256', 'HS384', 'HS512'])

/** An IP address or a CIDR (address/prefix), strictly: one "/", decimal prefix in range. */
export function ipOrCidrProblem(entry: string): string | undefined {
  const parts = entry.split('/')
  const addr = parts[0]
  const v6 = isIPv6(addr)
  const notIp = 'is not an IP address or a CIDR such as 10.0.0.0/8'
  if ((!isIPv4(addr) && !v6) || parts.length > 2) return notIp
  if (parts.length === 2) {
    const max = v6 ? 128 : 32
    if (!/^\d{1,3}$/.test(parts[1]) || Number(parts[1]) > max) return `has a CIDR prefix length that is not a number from 0 to ${max}`
  }
  try {
    // The same parser the gateway uses at run time, so "valid here" means "accepted there".
    parseTrustedProxies([entry])
  } catch {
    return notIp
  }
  return undefined
}

/** A URL with a user name or password in it (`scheme://user:password@host`). */
export function hasCredentials(url: string): boolean {
  try {
    const u = new URL(url)
    return u.username !== '' || u.password !== ''
  } catch {
    return false
  }
}

/** OpenSSL's error code of a failed parse: what a message may name (its text could quote a key). */
function opensslCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code
  return typeof code === 'string' ? code : 'unreadable'
}

/**
 * Why a certificate and key cannot serve TLS (unreadable PEM, a key that does not match the
 * certificate), or undefined. Named by OpenSSL's error code only: the message could quote the
 * key's text.
 */
function keyPairProblem(cert: string, key: string, minVersion: ListenerTlsConfig['minVersion']): string | undefined {
  try {
    createSecureContext({ cert, key, minVersion })
    return undefined
  } catch (err) {
    return `the certificate and key cannot be used for TLS (${opensslCode(err)}): both must be PEM, and the key unencrypted and the certificate's own`
  }
}

export function tlsProblem(tls: ListenerTlsConfig): string | undefined {
  const pair = keyPairProblem(tls.cert, tls.key, tls.minVersion)
  if (pair !== undefined) return pair
  // OpenSSL would start without them and fail every handshake of that version.
  const tls13 = tls.ciphers.some((c) => c.startsWith('TLS_'))
  if (!tls13) return 'ciphers names no TLS 1.3 suite (TLS_*): TLS 1.3 clients could not connect'
  if (tls.minVersion === 'TLSv1.2' && tls.ciphers.every((c) => c.startsWith('TLS_'))) {
    return 'ciphers names no TLS 1.2 suite (ECDHE-*) while minVersion is TLSv1.2: add one, or set minVersion: TLSv1.3'
  }
  if (tls.clientCertificates === 'require' && tls.clientCa === undefined) {
    return 'clientCertificates: require needs clientCa, the CAs whose certificates are accepted'
  }
  if (tls.clientCrl !== undefined) {
    if (tls.clientCa === undefined) return 'clientCrl needs clientCa: revocation lists are checked for certificates verified against it'
    const crl = crlProblem(tls.clientCrl)
    if (crl !== undefined) return crl
  }
  return tls.clientCa === undefined ? undefined : caListProblem(tls.clientCa, 'clientCa')
}

/** Why a PEM list of CRLs cannot be used: OpenSSL parses them when the secure context is made. */
function crlProblem(pem: string): string | undefined {
  if (!/-----BEGIN X509 CRL-----/.test(pem)) return 'clientCrl holds no PEM revocation list (-----BEGIN X509 CRL-----)'
  try {
    createSecureContext({ crl: pem })
    return undefined
  } catch (err) {
    return `clientCrl cannot be read (${opensslCode(err)})`
  }
}

/** Why a PEM list of CA certificates cannot be used. OpenSSL skips what it cannot read in a CA list without a word: each certificate is parsed here. */
function caListProblem(pem: string, field: string): string | undefined {
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g)
  if (blocks === null) return `${field} holds no PEM certificate`
  for (const [i, block] of blocks.entries()) {
    try {
      new X509Certificate(block)
    } catch (err) {
      return `certificate ${i + 1} of ${field} cannot be read (${opensslCode(err)})`
    }
  }
  return undefined
}

/** An upstream's `tls` section: for https:// only; cert and key together, loadable; a readable CA list. Paths relative to the upstream. */
export function upstreamTlsProblems(u: UpstreamConfig): Array<{ at: string; message: string }> {
  const tls = u.tls
  if (tls === undefined) return []
  if (!u.url.toLowerCase().startsWith('https:')) return [{ at: '/tls', message: 'tls applies to https:// upstreams only' }]
  const problems: Array<{ at: string; message: string }> = []
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    problems.push({ at: '/tls', message: 'a client certificate needs both cert and key' })
  } else if (tls.cert !== undefined && tls.key !== undefined) {
    const pair = keyPairProblem(tls.cert, tls.key, tls.minVersion)
    if (pair !== undefined) problems.push({ at: '/tls', message: pair })
  }
  const ca = tls.ca === undefined ? undefined : caListProblem(tls.ca, 'ca')
  if (ca !== undefined) problems.push({ at: '/tls/ca', message: ca })
  return problems
}

/**
 * The SNI certificates of a TLS listener: each pair must load, with the listener's minVersion, and
 * a server name may belong to one entry only (two would leave the choice to the order of the
 * file). Paths are relative to the listener's `tls`.
 */
export function sniProblems(tls: ListenerTlsConfig): Array<{ at: string; message: string }> {
  const problems: Array<{ at: string; message: string }> = []
  const owner = new Map<string, number>()
  tls.sni?.forEach((entry, i) => {
    const pair = keyPairProblem(entry.cert, entry.key, tls.minVersion)
    if (pair !== undefined) problems.push({ at: `/sni/${i}`, message: pair })
    entry.serverNames.forEach((name, j) => {
      const lower = name.toLowerCase()
      const first = owner.get(lower)
      if (first !== undefined) problems.push({ at: `/sni/${i}/serverNames/${j}`, message: `server name "${lower}" is already given to /sni/${first}` })
      else owner.set(lower, i)
    })
  })
  return problems
}

export function semanticIssues(config: Config, resolvedPaths: ReadonlySet<string>): SemanticIssue[] {
  const issues: SemanticIssue[] = []
  const add = (path: string, message: string) => issues.push({ path, message })
  const show = (value: unknown, path: string) => showValue(value, path, resolvedPaths)

  const uniqueIds = (section: string, items: readonly { id?: string }[], what: string): Set<string> => {
    const first = new Map<string, number>()
    items.forEach((item, i) => {
      if (item.id === undefined) return
      const prev = first.get(item.id)
      if (prev !== undefined) add(`/${section}/${i}/id`, `duplicate ${what} id ${show(item.id, `/${section}/${i}/id`)} (first used at /${section}/${prev})`)
      else first.set(item.id, i)
    })
    return new Set(first.keys())
  }
  // Two sockets on one port fail at start (EADDRINUSE). `::` takes the port on every interface
  // of both families (node binds it dual-stack), `0.0.0.0` on every IPv4 one; a specific IPv6
  // address next to `0.0.0.0` is fine. Port 0 picks a free port each time.
  const ANY6 = new Set(['::', '[::]', ''])
  const v6 = (host: string) => isIPv6(host.replace(/^\[|\]$/g, ''))
  const overlaps = (a: string, b: string) =>
    a === b || ANY6.has(a) || ANY6.has(b) || (a === '0.0.0.0' && !v6(b)) || (b === '0.0.0.0' && !v6(a))
  const bound: Array<{ path: string; host: string; port: number }> = []
  const bind = (path: string, host: string, port: number) => {
    if (port === 0) return
    const clash = bound.find((b) => b.port === port && overlaps(b.host, host))
    if (clash) add(`${path}/port`, `${host}:${port} is also used by ${clash.path} (${clash.host}:${clash.port}); two listeners cannot share a port`)
    else bound.push({ path, host, port })
  }
  config.listeners.forEach((l, i) => bind(`/listeners/${i}`, l.host, l.port))
  config.listeners.forEach((l, i) => {
    if (l.h2c && l.tls !== undefined) add(`/listeners/${i}/h2c`, 'h2c is HTTP/2 without TLS; a TLS listener offers HTTP/2 with tls.http2: true')
    if (l.tls === undefined) return
    const problem = tlsProblem(l.tls)
    if (problem !== undefined) add(`/listeners/${i}/tls`, problem)
    for (const p of sniProblems(l.tls)) add(`/listeners/${i}/tls${p.at}`, p.message)
  })
  if (config.metrics.enabled) bind('/metrics', config.metrics.host, config.metrics.port)

  const issuerIds = uniqueIds('issuers', config.issuers, 'issuer')
  const upstreamIds = uniqueIds('upstreams', config.upstreams, 'upstream')
  config.upstreams.forEach((u, i) => {
    for (const p of upstreamTlsProblems(u)) add(`/upstreams/${i}${p.at}`, p.message)
    const check = u.healthCheck
    if (check !== undefined && (check.path === undefined) === (check.grpcService === undefined)) {
      add(`/upstreams/${i}/healthCheck`, 'a health check probes either a path (GET) or a gRPC service (grpcService): give one of them')
    }
    if (check?.grpcService !== undefined && !u.http2) add(`/upstreams/${i}/healthCheck/grpcService`, 'the gRPC health protocol runs over HTTP/2: set http2: true on the upstream')
    u.replicas?.forEach((replica, j) => {
      const at = `/upstreams/${i}/replicas/${j}`
      const problem = replicaProblem(u.url, replica)
      if (problem !== undefined) add(at, `${show(replica, at)} ${problem}`)
    })
  })
  // Routes without an id are named route-<index>: an explicit id must not take one of those names,
  // or two routes would share one entry in every table keyed by route (limits, internal tokens).
  const routeFirst = new Map<string, number>()
  config.routes.forEach((r, i) => {
    const id = routeId(r, i)
    const prev = routeFirst.get(id)
    if (prev === undefined) routeFirst.set(id, i)
    else if (r.id !== undefined) add(`/routes/${i}/id`, `duplicate route id ${show(id, `/routes/${i}/id`)} (first used at /routes/${prev}; a route without an id is named route-<index>)`)
    else add(`/routes/${i}`, `this route has no id, so it is named "${id}", which /routes/${prev} already uses; give one of them another id`)
  })

  const seenIss = new Map<string, number>()
  config.issuers.forEach((iss, i) => {
    const p = `/issuers/${i}`
    // Issuer selection is by the token's `iss`: two entries with the same one would be ambiguous.
    if (iss.issuer !== undefined) {
      const prev = seenIss.get(iss.issuer)
      if (prev !== undefined) add(`${p}/issuer`, `the same "issuer" as /issuers/${prev}; tokens are matched to an issuer by their iss, so each must be distinct`)
      else seenIss.set(iss.issuer, i)
    }
    if (iss.jwksCacheMinAgeSec > iss.jwksCacheMaxAgeSec) {
      add(`${p}/jwksCacheMinAgeSec`, `must not exceed jwksCacheMaxAgeSec (${iss.jwksCacheMaxAgeSec})`)
    }
    const hmac = iss.algorithms.filter((a) => HMAC_ALGORITHMS.has(a))
    // The same derivation the gateway makes at start, which refuses the issuer without one.
    if (iss.discoveryUrl && !iss.issuer && issuerFromDiscoveryUrl(iss.discoveryUrl) === undefined) {
      add(
        `${p}/discoveryUrl`,
        'the issuer cannot be derived from this discoveryUrl (it is neither <issuer>/.well-known/openid-configuration nor <origin>/.well-known/oauth-authorization-server<path> without a query); set "issuer"',
      )
    }
    if (!iss.discoveryUrl) {
      // An issuer that only uses HMAC verifies with its sharedSecret and has no key set to fetch.
      const hmacOnly = hmac.length === iss.algorithms.length
      const missing = [!iss.issuer && '"issuer"', !iss.jwksUri && !hmacOnly && '"jwksUri"'].filter(Boolean) as string[]
      if (missing.length) add(p, `needs either "discoveryUrl" or both "issuer" and "jwksUri" (missing ${missing.join(' and ')})`)
    }
    // An HMAC verifier without a key would either accept nothing or, worse, be given a key at
    // run time from somewhere unexpected: refuse the shape outright.
    if (hmac.length && !iss.sharedSecret) add(`${p}/algorithms`, `${hmac.join(', ')} needs "sharedSecret" (use \${env:NAME} or \${file:PATH})`)
  })

  const describe = (ids: Set<string>) => (ids.size ? `defined: ${[...ids].join(', ')}` : 'none are defined')
  const seenRoutes = new Map<string, number>()
  // Paths the gateway answers itself, before routing.
  const ownPaths: Array<readonly [string, string, string]> = [
    ['server.healthPath', '/server/healthPath', config.server.healthPath],
    ['server.readyPath', '/server/readyPath', config.server.readyPath],
  ]
  if (config.internalTokens !== undefined) ownPaths.push(['internalTokens.jwksPath', '/internalTokens/jwksPath', config.internalTokens.jwksPath])
  // Only a listener that checks certificates against a CA can vouch for one (socket.authorized).
  const certificateListener = config.listeners.some((l) => l.tls !== undefined && l.tls.clientCertificates !== 'none' && l.tls.clientCa !== undefined)
  config.routes.forEach((r, i) => {
    const p = `/routes/${i}`
    if (!upstreamIds.has(r.upstream)) add(`${p}/upstream`, `unknown upstream ${show(r.upstream, `${p}/upstream`)} (${describe(upstreamIds)})`)
    r.issuers?.forEach((id, j) => {
      if (!issuerIds.has(id)) add(`${p}/issuers/${j}`, `unknown issuer ${show(id, `${p}/issuers/${j}`)} (${describe(issuerIds)})`)
    })
    if (r.auth === 'required' && config.issuers.length === 0) add(`${p}/auth`, 'auth is "required" but no issuers are configured, so no token could ever be accepted')
    if (r.scopes && r.auth !== 'required') add(`${p}/scopes`, 'scopes can only be checked on a route with auth: required')
    if (r.auth === 'certificate') {
      if (r.certificates === undefined) add(`${p}/auth`, 'auth is "certificate" but the route has no "certificates", the names of the client certificates it admits')
      if (r.issuers !== undefined) add(`${p}/issuers`, 'issuers apply to tokens; a route with auth: certificate admits by "certificates"')
      if (!certificateListener) {
        add(`${p}/auth`, 'auth is "certificate" but no listener verifies client certificates (a tls section with clientCertificates: request or require, and clientCa)')
      }
    } else if (r.certificates !== undefined) {
      add(`${p}/certificates`, 'certificates can only be checked on a route with auth: certificate')
    }
    // A WebSocket handshake is a GET (RFC 6455 §4.1): without it the route could never open one.
    if (r.websocket && !r.methods.includes('GET')) add(`${p}/websocket`, 'websocket: true needs GET among the route\'s methods: every WebSocket handshake is a GET')
    // undici tunnels a WebSocket over an HTTP/1.1 connection only (no RFC 8441 towards upstreams).
    if (r.websocket && config.upstreams.some((u) => u.id === r.upstream && u.http2)) {
      add(`${p}/websocket`, `websocket: true needs an upstream reached over HTTP/1.1, and ${show(r.upstream, `${p}/upstream`)} has http2: true`)
    }
    if (r.cors !== undefined) {
      r.cors.allowOrigins.forEach((o, j) => {
        const at = `${p}/cors/allowOrigins/${j}`
        const problem = originProblem(o, show(o, at))
        if (problem !== undefined) add(at, problem)
      })
      // The Fetch standard refuses it, and echoing every origin instead would hand any site the user's credentials.
      if (r.cors.allowCredentials && r.cors.allowOrigins.includes('*')) {
        add(`${p}/cors/allowCredentials`, 'allowCredentials cannot go with the "*" origin: list the origins whose pages may send credentials')
      }
    }
    if (r.grpcWeb && !config.upstreams.some((u) => u.id === r.upstream && u.http2)) {
      add(`${p}/grpcWeb`, `grpcWeb: true sends gRPC calls, which need HTTP/2 to the upstream: ${show(r.upstream, `${p}/upstream`)} needs http2: true`)
    }
    if (r.grpcWeb && !r.methods.includes('POST')) add(`${p}/grpcWeb`, 'grpcWeb: true needs POST among the route\'s methods: every gRPC-Web call is a POST')
    if (r.websocketTokenProtocol && (!r.websocket || r.auth !== 'required')) {
      add(`${p}/websocketTokenProtocol`, 'websocketTokenProtocol applies to the bearer token of a WebSocket handshake: it needs websocket: true and auth: required')
    }

    const problem = patternProblem(r.path)
    if (problem) add(`${p}/path`, `invalid path pattern: ${problem}`)
    else {
      for (const [field, pointer, own] of ownPaths) {
        if (matchesExactly(r.path, own)) {
          add(`${p}/path`, `collides with ${field} ${show(own, pointer)}: the gateway answers that path itself, so this route would never receive it`)
        }
      }
      // The router keeps the first of two routes with the same shape and method; the second
      // would be silently dead, and its policy with it. An earlier GET route answers HEAD too,
      // so a later route listing HEAD on the same path is dead for it.
      // Routes compete only within a host group (route/hosts.ts): the same path may have a route
      // per host.
      const shape = patternShape(r.path)
      const groups = r.hosts === undefined ? [''] : routeHostGroups(r.hosts)
      dead: for (const g of groups) {
        for (const m of r.methods) {
          const prev = seenRoutes.get(`${g} ${m} ${shape}`)
          if (prev !== undefined) {
            const on = g === '' ? '' : ` for host "${g}"`
            add(`${p}/path`, `${m} on this path${on} is already handled by /routes/${prev}; this route would never match`)
            break dead
          }
        }
      }
      for (const g of groups) for (const m of routeMethods(r.methods)) if (!seenRoutes.has(`${g} ${m} ${shape}`)) seenRoutes.set(`${g} ${m} ${shape}`, i)
    }
    const listedAt = new Map<string, number>()
    r.hosts?.forEach((h, j) => {
      const first = listedAt.get(canonicalHostName(h))
      if (first === undefined) listedAt.set(canonicalHostName(h), j)
      else add(`${p}/hosts/${j}`, `${show(h, `${p}/hosts/${j}`)} is listed already (at /routes/${i}/hosts/${first}; names compare without letter case and trailing dot)`)
    })
  })

  const s = config.server
  if (s.healthPath === s.readyPath) add('/server/readyPath', 'must differ from server.healthPath')
  // Node refuses to create the server otherwise (ERR_OUT_OF_RANGE, with no hint of the config).
  // Reported at the field that was likely changed: headersTimeoutMs unless it is the default.
  if (s.headersTimeoutMs > s.requestTimeoutMs) {
    const at = s.headersTimeoutMs === ServerSchema.properties.headersTimeoutMs.default ? '/server/requestTimeoutMs' : '/server/headersTimeoutMs'
    add(
      at,
      `server.headersTimeoutMs (${s.headersTimeoutMs}) must not be longer than server.requestTimeoutMs (${s.requestTimeoutMs}): the headers are part of the request; lower headersTimeoutMs or raise requestTimeoutMs`,
    )
  }
  s.trustedProxies.forEach((entry, i) => {
    const problem = ipOrCidrProblem(entry)
    if (problem) add(`/server/trustedProxies/${i}`, `${show(entry, `/server/trustedProxies/${i}`)} ${problem}`)
  })
  // The gateway writes this into every token it mints (iss, act.sub): credentials in it would go
  // to every upstream. Its schema lives with the internal tokens; the fetched URLs refuse them by
  // pattern.
  if (config.internalTokens !== undefined && hasCredentials(config.internalTokens.issuer)) {
    add('/internalTokens/issuer', 'must not contain credentials (user:password@): it is the iss of every internal token')
  }
  for (const issue of limitsSemanticIssues(config.limits, config.routes)) add(issue.path, issue.message)
  for (const issue of internalTokensIssues(config, show)) add(issue.path, issue.message)
  return issues
}

/**
 * Why a CORS origin of the config is not one a browser would send (the Fetch standard's
 * serialized origin: scheme, host and a port only when not the default, lower case, no path), or
 * undefined for a good one or "*". `shown` is how a message may name the value (not at all when it
 * came from an env or file reference).
 */
export function originProblem(origin: string, shown: string): string | undefined {
  if (origin === '*') return undefined
  let url: URL
  try {
    url = new URL(origin)
  } catch {
    return `${shown} is not an origin (scheme://host[:port])`
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return `${shown} is not an http or https origin`
  if (url.origin !== origin) return `${shown} is not written as browsers send an origin: scheme://host[:port], lower case, no path or trailing slash, no default port`
  return undefined
}

/**
 * Why a replica cannot stand in for an upstream's url: every target of one upstream gets the same
 * request-target (one path prefix) and the same TLS settings (one scheme).
 */
export function replicaProblem(url: string, replica: string): string | undefined {
  const a = new URL(url)
  const b = new URL(replica)
  if (a.protocol !== b.protocol) return `must use the scheme of url (${a.protocol.slice(0, -1)}): tls and timeouts apply to every target alike`
  const path = (u: URL) => u.pathname.replace(/\/+$/, '')
  if (path(a) !== path(b)) return `must have the path of url ("${path(a)}"): every target is sent the same request path`
  if (a.origin === b.origin) return 'is url itself'
  return undefined
}
