import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'

/**
 * Client side of the limits end-to-end tests: requests from a chosen local address (so one test
 * can be several clients: on Linux the whole 127.0.0.0/8 is loopback), and a strict reader for
 * the RateLimit / RateLimit-Policy fields.
 */
export interface Reply {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Record<string, unknown>
}

export interface SendOptions {
  /** A header given an array is sent once per value (e.g. two Authorization fields). */
  readonly headers?: OutgoingHttpHeaders
  /** Source address of the TCP connection (e.g. 127.0.0.2). */
  readonly localAddress?: string
  readonly method?: string
  /** Bound on the whole exchange: a request that takes longer fails the test instead of hanging it. */
  readonly timeoutMs?: number
}

/** One request on its own connection (agent: false), so `localAddress` applies and N calls are N sockets. */
export function send(base: string, path: string, options: SendOptions = {}): Promise<Reply> {
  const timeoutMs = options.timeoutMs ?? 15_000
  return new Promise((resolve, reject) => {
    const req = request(
      base + path,
      { method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress, agent: false },
      (res) => {
        let text = ''
        res.setEncoding('utf8').on('data', (c: string) => (text += c))
        res.on('end', () => {
          clearTimeout(timer)
          let body: Record<string, unknown>
          try {
            body = JSON.parse(text) as Record<string, unknown>
          } catch {
            body = { raw: text }
          }
          resolve({ status: res.statusCode!, headers: res.headers, body })
        })
        res.on('error', reject)
      },
    )
    const timer = setTimeout(() => req.destroy(new Error(`no complete answer to ${path} within ${timeoutMs} ms`)), timeoutMs)
    req.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    req.end()
  })
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

/** How many replies had each status. */
export function statusCounts(replies: readonly Reply[]): Record<number, number> {
  const out: Record<number, number> = {}
  for (const r of replies) out[r.status] = (out[r.status] ?? 0) + 1
  return out
}

/** Calls `attempt` until it returns a value (not undefined), every `everyMs`, at most `timeoutMs`. */
export async function eventually<T>(attempt: () => Promise<T | undefined>, what: string, timeoutMs = 20_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await attempt()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(everyMs)
  }
}

// ---------------------------------------------------------------------------------------------
// Structured Field Lists (RFC 9651 §3.1, §4.2), the syntax of RateLimit and RateLimit-Policy
// (draft-ietf-httpapi-ratelimit-headers §3, §4). Strict: anything outside the grammar throws, so
// a test using it fails on a malformed field rather than reading something out of it.
// ---------------------------------------------------------------------------------------------

export type BareItem = number | string | boolean | { readonly token: string }
export interface SfItem {
  readonly value: BareItem
  readonly params: Record<string, BareItem>
}

export function parseSfList(field: string): SfItem[] {
  let i = 0
  const s = field
  const fail = (why: string): never => {
    throw new Error(`not a Structured Field List (${why} at ${i}): ${JSON.stringify(field)}`)
  }
  const sp = () => {
    while (s[i] === ' ') i++
  }
  const ows = () => {
    while (s[i] === ' ' || s[i] === '\t') i++
  }
  function bareItem(): BareItem {
    const c = s[i]
    if (c === '"') {
      i++
      let out = ''
      for (;;) {
        if (i >= s.length) fail('unterminated string')
        const ch = s[i++]
        if (ch === '\\') {
          const next = s[i++]
          if (next !== '"' && next !== '\\') fail('bad escape')
          out += next
        } else if (ch === '"') {
          return out
        } else {
          const code = ch.charCodeAt(0)
          if (code < 0x20 || code > 0x7e) fail('bad string character')
          out += ch
        }
      }
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const m = /^-?\d{1,15}(\.\d{1,3})?/.exec(s.slice(i))
      if (!m) fail('bad number')
      i += m![0].length
      return Number(m![0])
    }
    if (c === '?') {
      const b = s[i + 1]
      if (b !== '0' && b !== '1') fail('bad boolean')
      i += 2
      return b === '1'
    }
    const m = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*/.exec(s.slice(i))
    if (!m) fail('no bare item')
    i += m![0].length
    return { token: m![0] }
  }
  function key(): string {
    const m = /^[a-z*][a-z0-9_\-.*]*/.exec(s.slice(i))
    if (!m) fail('bad key')
    i += m![0].length
    return m![0]
  }
  const items: SfItem[] = []
  sp()
  if (i >= s.length) fail('empty')
  for (;;) {
    const value = bareItem()
    const params: Record<string, BareItem> = {}
    while (s[i] === ';') {
      i++
      sp()
      const k = key()
      let v: BareItem = true
      if (s[i] === '=') {
        i++
        v = bareItem()
      }
      params[k] = v
    }
    items.push({ value, params })
    ows()
    if (i >= s.length) return items
    if (s[i] !== ',') fail('expected ","')
    i++
    ows()
    if (i >= s.length) fail('trailing comma')
  }
}

export interface PolicyItem {
  readonly name: string
  readonly q: number
  readonly w?: number
  readonly qu?: string
}
export interface LimitItem {
  readonly name: string
  readonly r: number
  readonly t?: number
}

const isNonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0

/** RateLimit-Policy: a non-empty List of Items whose value is a String, with q (required), w, qu (§3.1). */
export function parsePolicyField(field: string): PolicyItem[] {
  return parseSfList(field).map((it) => {
    if (typeof it.value !== 'string') throw new Error(`RateLimit-Policy item is not a String: ${field}`)
    const { q, w, qu } = it.params
    if (!isNonNegInt(q)) throw new Error(`RateLimit-Policy item without an Integer q: ${field}`)
    if (w !== undefined && !(isNonNegInt(w) && w > 0)) throw new Error(`RateLimit-Policy w is not a positive Integer: ${field}`)
    if (qu !== undefined && typeof qu !== 'string') throw new Error(`RateLimit-Policy qu is not a String: ${field}`)
    return { name: it.value, q, ...(w !== undefined ? { w } : {}), ...(qu !== undefined ? { qu } : {}) }
  })
}

/** RateLimit: a List of Items whose value is a String, with r (required) and t (§4.1). */
export function parseLimitField(field: string): LimitItem[] {
  return parseSfList(field).map((it) => {
    if (typeof it.value !== 'string') throw new Error(`RateLimit item is not a String: ${field}`)
    const { r, t } = it.params
    if (!isNonNegInt(r)) throw new Error(`RateLimit item without a non-negative Integer r: ${field}`)
    if (t !== undefined && !isNonNegInt(t)) throw new Error(`RateLimit t is not a non-negative Integer: ${field}`)
    return { name: it.value, r, ...(t !== undefined ? { t } : {}) }
  })
}

/** Both fields of a reply, checked for syntax and for naming only policies that RateLimit-Policy declares. */
export function rateLimitFields(reply: Reply): { policy: PolicyItem[]; limit: LimitItem[] } | undefined {
  const p = reply.headers['ratelimit-policy']
  const l = reply.headers.ratelimit
  if (p === undefined && l === undefined) return undefined
  if (typeof p !== 'string' || typeof l !== 'string') throw new Error(`RateLimit and RateLimit-Policy must come together (got ${p} / ${l})`)
  const policy = parsePolicyField(p)
  const limit = parseLimitField(l)
  const declared = new Set(policy.map((x) => x.name))
  for (const item of limit) if (!declared.has(item.name)) throw new Error(`RateLimit names "${item.name}", which RateLimit-Policy does not declare`)
  return { policy, limit }
}
