import { routeId } from './route-pattern.js'
import { isIPv4, isIPv6 } from 'node:net'
import { didYouMean } from './schema-errors.js'
import { HMAC_ALGORITHMS } from './semantic.js'
import type { Config } from './schema.js'

/**
 * The security lint: settings that are valid but dangerous. Every finding of an "error" rule stops
 * `check-config` and `start`, unless the operator acknowledges it in `security.acknowledge` with a
 * reason; then it is reported as a warning. A few rules cannot be acknowledged at all: they break a
 * MUST of a standard. "warning" rules never block. docs/config.md documents every rule.
 */
export type LintLevel = 'error' | 'warning'

export interface LintRule {
  readonly id: string
  readonly level: LintLevel
  /** False for rules no acknowledgement can silence. */
  readonly acknowledgeable: boolean
  readonly summary: string
}

export const LINT_RULES = {
  'alg-none': {
    level: 'error',
    acknowledgeable: false,
    summary: 'An issuer accepts alg "none": unsigned tokens (RFC 8725 §3.1, RFC 9068 §4).',
  },
  'hmac-algorithm': {
    level: 'error',
    acknowledgeable: true,
    summary: 'An issuer accepts HS256/384/512: whoever can verify can also mint tokens (RFC 8725 §3.5).',
  },
  'hmac-secret-short': {
    level: 'error',
    acknowledgeable: false,
    summary: 'The HMAC sharedSecret is shorter than the hash output (32/48/64 bytes): RFC 7518 §3.2 says MUST NOT.',
  },
  'hmac-secret-inline': {
    level: 'error',
    acknowledgeable: true,
    summary: 'The sharedSecret is written in the config file instead of a ${env:NAME} or ${file:PATH} reference.',
  },
  'issuer-no-audience': {
    level: 'error',
    acknowledgeable: true,
    summary: 'An issuer has no audiences: tokens minted for any other service would be accepted (RFC 8725 §3.9).',
  },
  'issuer-insecure-url': {
    level: 'error',
    acknowledgeable: true,
    summary: 'Discovery or JWKS URL over plain http:// to a non-loopback host: keys can be swapped in transit.',
  },
  'upstream-insecure-url': {
    level: 'warning',
    acknowledgeable: true,
    summary: 'Upstream URL over plain http:// to a non-loopback host: requests (and forwarded tokens) cross the network in clear text.',
  },
  'token-lifetime-long': {
    level: 'error',
    acknowledgeable: true,
    summary: 'maxTokenLifetimeSec above 86400 (one day): a stolen access token stays useful for long.',
  },
  'clock-skew-large': {
    level: 'error',
    acknowledgeable: true,
    summary: 'clockSkewSec above 120: expired tokens stay accepted for minutes.',
  },
  'listener-public-plain': {
    level: 'error',
    acknowledgeable: true,
    summary: 'A listener binds a non-loopback address without TLS: bearer tokens cross the network in clear text (RFC 6750 §5.3).',
  },
  'listener-http2-vulnerable': {
    level: 'error',
    acknowledgeable: true,
    summary:
      "An HTTP/2 listener (tls.http2 or h2c) on a Node.js whose nghttp2 is older than 1.68.1: frames any client can send abort the gateway's process (CVE-2026-27135).",
  },
  'public-route-catch-all': {
    level: 'error',
    acknowledgeable: true,
    summary: 'A public route with path "/**": every path without a more specific route is open without a token.',
  },
  'trusted-proxies-any': {
    level: 'error',
    acknowledgeable: true,
    summary:
      'server.trustedProxies contains a range wider than an IPv4 /8 or an IPv6 /16 (private IPv6 ranges excepted), or one that holds IPv4-mapped addresses that wide: any client can set its own address through X-Forwarded-For.',
  },
  'tls-key-inline': {
    level: 'error',
    acknowledgeable: true,
    summary: "A TLS private key (a listener's, or the client key towards an upstream) is written in the config file instead of a ${file:PATH} or ${env:NAME} reference.",
  },
  'signing-keys-inline': {
    level: 'error',
    acknowledgeable: true,
    summary: 'internalTokens.signingKeys (private keys) is written in the config file instead of a ${file:PATH} or ${env:NAME} reference.',
  },
} as const satisfies Record<string, Omit<LintRule, 'id'>>

export type LintRuleId = keyof typeof LINT_RULES

export function lintRule(id: string): LintRule | undefined {
  const r = (LINT_RULES as Record<string, Omit<LintRule, 'id'>>)[id]
  return r ? { id, ...r } : undefined
}

export interface LintFinding {
  readonly rule: LintRuleId
  /** Issuer / upstream / route id, or "host:port" for a listener; undefined for server-wide rules. */
  readonly target: string | undefined
  /** JSON pointer of the field at fault. */
  readonly path: string
  readonly message: string
}

export interface LintContext {
  /** Pointers whose whole value was a single ${env:}/${file:} reference. */
  readonly wholeRefPaths: ReadonlySet<string>
  /** The nghttp2 version HTTP/2 listeners would run on (default: this process's). */
  readonly nghttp2?: string
}

/** The first nghttp2 release without CVE-2026-27135 (an assertion any peer can trigger, aborting the process). */
const NGHTTP2_FIXED = [1, 68, 1]

/** Whether nghttp2 `version` ("1.61.0") is older than NGHTTP2_FIXED; an unreadable version counts as older. */
export function nghttp2Vulnerable(version: string | undefined): boolean {
  const parts = (version ?? '').split('.').map(Number)
  if (parts.length < 3 || parts.some((n) => !Number.isInteger(n))) return true
  for (let i = 0; i < 3; i++) if (parts[i] !== NGHTTP2_FIXED[i]) return parts[i] < NGHTTP2_FIXED[i]
  return false
}

const HMAC_MIN_BYTES: Record<string, number> = { HS256: 32, HS384: 48, HS512: 64 }

/** RFC 6761 §6.3: "localhost" and names below it are loopback; so are 127.0.0.0/8 and ::1. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase().replace(/\.$/, '')
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  if (isIPv4(h)) return h.startsWith('127.')
  if (isIPv6(h)) return h === '::1' || /^(0{0,4}:){1,7}0{0,3}1$/.test(h) || (h.startsWith('::ffff:') && isIPv4(h.slice(7)) && h.slice(7).startsWith('127.'))
  return false
}

function plainHttpHost(url: string | undefined): string | undefined {
  if (!url) return undefined
  let u: URL
  try {
    u = new URL(url)
  } catch {
    return undefined
  }
  if (u.protocol !== 'http:') return undefined
  return isLoopbackHost(u.hostname) ? undefined : u.hostname
}

const IPV6_BITS = 128n
/** ::ffff:0:0/96, where node's BlockList also matches IPv4 peers (as ::ffff:a.b.c.d). */
const IPV4_MAPPED = 0xffffn << 32n
/** Unique local (fc00::/7) and link-local (fe80::/10): not routed on the internet, like 10/8. */
const IPV6_PRIVATE: ReadonlyArray<readonly [bigint, number]> = [
  [0xfcn << 120n, 7],
  [0xfe8n << 116n, 10],
]

function ipv4Value(addr: string): number {
  return addr.split('.').reduce((acc, part) => acc * 256 + Number(part), 0)
}

/** An IPv6 address as a 128-bit number; undefined for anything else (a zone id, say). */
export function ipv6Value(addr: string): bigint | undefined {
  if (!isIPv6(addr) || addr.includes('%')) return undefined
  let text = addr.toLowerCase()
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (v4) {
    const n = ipv4Value(v4[1])
    text = `${text.slice(0, -v4[1].length)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`
  }
  const [head, tail] = text.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t]
  if (groups.length !== 8) return undefined
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n)
}

/** Whether net/prefix lies inside base/basePrefix. */
function within(net: bigint, prefix: number, base: bigint, basePrefix: number): boolean {
  const shift = IPV6_BITS - BigInt(basePrefix)
  return prefix >= basePrefix && net >> shift === base >> shift
}

/**
 * Why a server.trustedProxies entry trusts (nearly) every client, or undefined. The line is drawn
 * at an IPv4 /8 (10.0.0.0/8, the largest private range, is fine) and an IPv6 /16, except inside
 * the private IPv6 ranges. IPv6 ranges are also judged by the IPv4 addresses they hold, because
 * the gateway matches IPv4 peers against IPv4-mapped ranges: ::/1 and ::ffff:0:0/96 trust every
 * IPv4 client, ::ffff:0.0.0.0/97 half of them.
 */
export function broadProxyRange(entry: string): string | undefined {
  const [addr, bits, ...rest] = entry.trim().split('/')
  if (bits === undefined || rest.length || !/^\d{1,3}$/.test(bits)) return undefined
  const prefix = Number(bits)
  if (isIPv4(addr)) {
    if (prefix > 32) return undefined
    if (prefix === 0) return 'this range contains every IPv4 address'
    return prefix < 8 ? `this range is an IPv4 /${prefix}, wider than a /8` : undefined
  }
  const value = ipv6Value(addr)
  if (value === undefined || prefix > 128) return undefined
  if (prefix === 0) return 'this range contains every address, IPv4 ones included'
  const host = (1n << (IPV6_BITS - BigInt(prefix))) - 1n
  const net = value & ~host
  if (prefix <= 96 && within(IPV4_MAPPED, 96, net, prefix)) {
    return 'this range contains the IPv4-mapped block ::ffff:0:0/96, so it holds every IPv4 client'
  }
  if (prefix < 104 && within(net, prefix, IPV4_MAPPED, 96)) {
    return `this range is the IPv4-mapped form of an IPv4 /${prefix - 96}, wider than a /8`
  }
  if (prefix < 16 && !IPV6_PRIVATE.some(([base, basePrefix]) => within(net, prefix, base, basePrefix))) {
    return `this range is an IPv6 /${prefix}, wider than a /16`
  }
  return undefined
}

/** Runs every rule on a resolved, schema-valid config. Order: by section, then by field. */
/** The finding of tls-key-inline, wherever the key is. */
const INLINE_KEY = 'the private key is written in the config file; use ${file:PATH} or ${env:NAME} instead'

export function lintConfig(config: Config, ctx: LintContext): LintFinding[] {
  const out: LintFinding[] = []
  const add = (rule: LintRuleId, target: string | undefined, path: string, message: string) => out.push({ rule, target, path, message })

  const nghttp2 = ctx.nghttp2 ?? process.versions.nghttp2
  const http2Vulnerable = nghttp2Vulnerable(nghttp2)
  config.listeners.forEach((l, i) => {
    if (http2Vulnerable && (l.h2c || l.tls?.http2 === true)) {
      add(
        'listener-http2-vulnerable',
        `${l.host}:${l.port}`,
        l.h2c ? `/listeners/${i}/h2c` : `/listeners/${i}/tls/http2`,
        `this Node.js bundles nghttp2 ${nghttp2 ?? '(unknown)'}, which aborts the process on a sequence of frames any client can send (CVE-2026-27135, fixed in nghttp2 1.68.1): run a Node.js release that bundles nghttp2 1.68.1 or later, serve HTTP/1.1 only, or acknowledge`,
      )
    }
    if (!isLoopbackHost(l.host) && l.tls === undefined) {
      add('listener-public-plain', `${l.host}:${l.port}`, `/listeners/${i}/host`, 'this listener is reachable from the network without TLS; add a tls section, bind 127.0.0.1, or put a TLS terminator in front and acknowledge')
    }
    const keyPaths = l.tls === undefined ? [] : [`/listeners/${i}/tls/key`, ...(l.tls.sni ?? []).map((_, j) => `/listeners/${i}/tls/sni/${j}/key`)]
    for (const keyPath of keyPaths) {
      if (!ctx.wholeRefPaths.has(keyPath)) add('tls-key-inline', `${l.host}:${l.port}`, keyPath, INLINE_KEY)
    }
  })

  config.server.trustedProxies.forEach((entry, i) => {
    const why = broadProxyRange(entry)
    if (why) add('trusted-proxies-any', undefined, `/server/trustedProxies/${i}`, `${why}: any client in it could choose the address the gateway logs and limits by`)
  })

  config.issuers.forEach((iss, i) => {
    const p = `/issuers/${i}`
    iss.algorithms.forEach((alg, j) => {
      if (alg === 'none') add('alg-none', iss.id, `${p}/algorithms/${j}`, '"none" accepts unsigned tokens, so anyone can claim any identity; remove it')
    })
    const hmac = iss.algorithms.filter((a) => HMAC_ALGORITHMS.has(a))
    if (hmac.length) {
      add('hmac-algorithm', iss.id, `${p}/algorithms`, `${hmac.join(', ')}: the gateway holds the same key the issuer signs with, so a leak lets anyone mint tokens; prefer RS256/ES256/EdDSA`)
      if (iss.sharedSecret !== undefined) {
        const need = Math.max(...hmac.map((a) => HMAC_MIN_BYTES[a]))
        const have = Buffer.byteLength(iss.sharedSecret, 'utf8')
        // Only the lengths are shown, never the secret or a part of it.
        if (have < need) add('hmac-secret-short', iss.id, `${p}/sharedSecret`, `sharedSecret is ${have} bytes; ${hmac.join(', ')} needs at least ${need}`)
      }
    }
    if (iss.sharedSecret !== undefined && !ctx.wholeRefPaths.has(`${p}/sharedSecret`)) {
      add('hmac-secret-inline', iss.id, `${p}/sharedSecret`, 'sharedSecret is written in the config file; use ${env:NAME} or ${file:PATH} instead')
    }
    if (iss.audiences.length === 0) {
      add('issuer-no-audience', iss.id, `${p}/audiences`, 'no audiences: a token this issuer minted for any other service would be accepted here')
    }
    for (const field of ['discoveryUrl', 'jwksUri'] as const) {
      const host = plainHttpHost(iss[field])
      if (host) add('issuer-insecure-url', iss.id, `${p}/${field}`, `${field} uses plain http:// to a non-loopback host; keys fetched this way can be replaced in transit`)
    }
    if (iss.maxTokenLifetimeSec > 86_400) {
      add('token-lifetime-long', iss.id, `${p}/maxTokenLifetimeSec`, `${iss.maxTokenLifetimeSec} s is longer than one day (86400 s)`)
    }
    if (iss.clockSkewSec > 120) {
      add('clock-skew-large', iss.id, `${p}/clockSkewSec`, `${iss.clockSkewSec} s of tolerance keeps expired tokens valid for minutes (at most 120 s)`)
    }
  })

  config.upstreams.forEach((u, i) => {
    if (plainHttpHost(u.url)) add('upstream-insecure-url', u.id, `/upstreams/${i}/url`, 'plain http:// to a non-loopback host: requests, and forwarded tokens, cross the network unencrypted')
    u.replicas?.forEach((replica, j) => {
      if (plainHttpHost(replica)) add('upstream-insecure-url', u.id, `/upstreams/${i}/replicas/${j}`, 'plain http:// to a non-loopback host: requests, and forwarded tokens, cross the network unencrypted')
    })
    if (u.tls?.key !== undefined && !ctx.wholeRefPaths.has(`/upstreams/${i}/tls/key`)) {
      add('tls-key-inline', u.id, `/upstreams/${i}/tls/key`, INLINE_KEY)
    }
  })

  config.routes.forEach((r, i) => {
    if (r.auth === 'public' && r.path === '/**') {
      add('public-route-catch-all', routeId(r, i), `/routes/${i}/path`, 'a public "/**" route opens every path that no other route matches')
    }
  })
  if (config.internalTokens !== undefined && !ctx.wholeRefPaths.has('/internalTokens/signingKeys')) {
    add('signing-keys-inline', undefined, '/internalTokens/signingKeys', 'the private signing keys are written in the config file; use ${file:PATH} or ${env:NAME} instead')
  }
  return out
}

export interface Acknowledgement {
  readonly rule: string
  readonly target?: string
  readonly reason: string
}

export interface JudgedFinding extends LintFinding {
  /** Set when the finding is reported as a warning because it was acknowledged. */
  readonly acknowledged?: string
}

export interface LintVerdict {
  readonly errors: readonly JudgedFinding[]
  readonly warnings: readonly JudgedFinding[]
  /** Problems with the acknowledgements themselves (index into security.acknowledge). */
  readonly ackIssues: readonly { readonly index: number; readonly field: 'rule' | 'target'; readonly message: string; readonly level: LintLevel }[]
}

/**
 * Splits findings into errors and warnings. An acknowledgement without a target covers every
 * finding of its rule; with a target, only that issuer / upstream / route / listener.
 */
export function judgeFindings(findings: readonly LintFinding[], acks: readonly Acknowledgement[]): LintVerdict {
  const errors: JudgedFinding[] = []
  const warnings: JudgedFinding[] = []
  const used = new Set<number>()
  const ackIssues: LintVerdict['ackIssues'][number][] = []

  acks.forEach((a, index) => {
    const rule = lintRule(a.rule)
    if (!rule) ackIssues.push({ index, field: 'rule', level: 'error', message: `unknown lint rule "${a.rule}"${didYouMean(a.rule, Object.keys(LINT_RULES))} (known: ${Object.keys(LINT_RULES).join(', ')})` })
    else if (!rule.acknowledgeable) ackIssues.push({ index, field: 'rule', level: 'error', message: `rule "${a.rule}" cannot be acknowledged: fix the setting` })
  })

  for (const f of findings) {
    const rule = lintRule(f.rule)!
    const matching = rule.acknowledgeable ? acks.flatMap((a, i) => (a.rule === f.rule && (a.target === undefined || a.target === f.target) ? [i] : [])) : []
    if (matching.length) {
      for (const i of matching) used.add(i)
      warnings.push({ ...f, acknowledged: acks[matching[0]].reason })
    } else if (rule.level === 'warning') {
      warnings.push(f)
    } else {
      errors.push(f)
    }
  }
  acks.forEach((a, index) => {
    const rule = lintRule(a.rule)
    if (rule?.acknowledgeable && !used.has(index)) {
      // A stale acknowledgement is harmless but hides intent (a typo in target, a fixed setting).
      ackIssues.push({ index, field: a.target === undefined ? 'rule' : 'target', level: 'warning', message: `acknowledgement of "${a.rule}"${a.target === undefined ? '' : ` for "${a.target}"`} matches no finding` })
    }
  })
  return { errors, warnings, ackIssues }
}
