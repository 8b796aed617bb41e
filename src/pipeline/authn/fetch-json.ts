import { MAX_DOCUMENT_BYTES } from './limits.js'

export interface FetchedJson {
  readonly body: unknown
  /** Freshness the server granted (RFC 9111 §5.2.2.1 max-age minus Age), in seconds, if any. */
  readonly maxAgeSec: number | undefined
}

/** A fetch failure with a short machine reason for the keys.refresh_failed event. */
export class FetchError extends Error {
  constructor(readonly reason: string, message: string) {
    super(message)
    this.name = 'FetchError'
  }
}

/**
 * Freshness from Cache-Control (RFC 9111 §5.2.2): `no-store` / `no-cache` mean "as short as
 * allowed" (0, raised to the configured minimum by the caller); `max-age=N` minus the `Age`
 * header; undefined when the server says nothing.
 */
export function freshnessFromHeaders(cacheControl: string | null, age: string | null): number | undefined {
  if (!cacheControl) return undefined
  let maxAge: number | undefined
  for (const directive of cacheControl.split(',')) {
    const d = directive.trim().toLowerCase()
    if (d === 'no-store' || d === 'no-cache') return 0
    const m = /^max-age\s*=\s*"?(\d+)"?$/.exec(d)
    if (m) maxAge = Number(m[1])
  }
  if (maxAge === undefined) return undefined
  const ageSec = age && /^\d+$/.test(age.trim()) ? Number(age.trim()) : 0
  return Math.max(0, maxAge - ageSec)
}

async function readCapped(res: Response, limit: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN)
  if (declared > limit) throw new FetchError('too_large', `document larger than ${limit} bytes`)
  if (!res.body) return ''
  const chunks: Uint8Array[] = []
  let total = 0
  for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength
    if (total > limit) throw new FetchError('too_large', `document larger than ${limit} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/**
 * What a failed request says in the keys.refresh_failed event: the system error code only. fetch's
 * own messages may quote the URL, user info included ("Request cannot be constructed from a URL
 * that includes credentials: https://user:password@…"), and events never carry a secret.
 */
function networkMessage(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } } | null
  const code = e?.cause?.code ?? e?.code
  return typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code) ? `request failed (${code})` : 'request failed'
}

/**
 * GETs a JSON document with a timeout and a size cap. Redirects are refused: keys come from the
 * configured URL (or the jwks_uri of the configured discovery document) and nowhere else.
 */
export async function fetchJson(url: string, timeoutMs: number, signal: AbortSignal): Promise<FetchedJson> {
  let res: Response
  const timeout = AbortSignal.timeout(timeoutMs)
  try {
    res = await fetch(url, {
      headers: { accept: 'application/json, application/jwk-set+json' },
      redirect: 'error',
      signal: AbortSignal.any([signal, timeout]),
    })
  } catch (err) {
    if (timeout.aborted) throw new FetchError('timeout', `no response within ${timeoutMs} ms`)
    if (signal.aborted) throw new FetchError('closed', 'key store closed')
    throw new FetchError('network', networkMessage(err))
  }
  let text: string
  try {
    if (res.status !== 200) {
      void res.body?.cancel().catch(() => {})
      throw new FetchError('http_status', `HTTP ${res.status}`)
    }
    text = await readCapped(res, MAX_DOCUMENT_BYTES)
  } catch (err) {
    if (err instanceof FetchError) throw err
    if (timeout.aborted) throw new FetchError('timeout', `no complete response within ${timeoutMs} ms`)
    throw new FetchError('network', networkMessage(err))
  }
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch {
    throw new FetchError('bad_json', 'response is not JSON')
  }
  return { body, maxAgeSec: freshnessFromHeaders(res.headers.get('cache-control'), res.headers.get('age')) }
}
