import { MAX_DOCUMENT_BYTES } from './limits.js'

/** A discovery or JWKS fetch that failed; `reason` is for logs and for VerifyError.reason. */
export class FetchFailure extends Error {
  constructor(readonly reason: string, options?: { cause?: unknown }) {
    super(`key material could not be loaded: ${reason}`, options)
    this.name = 'FetchFailure'
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v)

/**
 * GETs a JSON object: 200 only, no redirects followed (a redirect could move key retrieval to a
 * host the configuration never named), at most MAX_DOCUMENT_BYTES (an issuer, or whoever sits in
 * between, must not be able to exhaust our memory), bounded in time by `signal`.
 */
export async function fetchJsonObject(url: string, signal: AbortSignal, headers?: HeadersInit): Promise<Record<string, unknown>> {
  let res: Response
  try {
    res = await fetch(url, { method: 'GET', redirect: 'manual', signal, headers: headers ?? { accept: 'application/json' } })
  } catch (cause) {
    throw new FetchFailure(signal.aborted ? 'timeout' : 'network', { cause })
  }
  if (res.status !== 200) {
    await res.body?.cancel().catch(() => {})
    throw new FetchFailure(`status_${res.status}`)
  }
  const declared = Number(res.headers.get('content-length'))
  if (declared > MAX_DOCUMENT_BYTES) {
    await res.body?.cancel().catch(() => {})
    throw new FetchFailure('too_large')
  }
  const chunks: Uint8Array[] = []
  let total = 0
  try {
    if (res.body) {
      const reader = res.body.getReader()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) break
        total += value.byteLength
        if (total > MAX_DOCUMENT_BYTES) {
          await reader.cancel().catch(() => {})
          throw new FetchFailure('too_large')
        }
        chunks.push(value)
      }
    }
  } catch (cause) {
    if (cause instanceof FetchFailure) throw cause
    throw new FetchFailure(signal.aborted ? 'timeout' : 'network', { cause })
  }
  let value: unknown
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (cause) {
    throw new FetchFailure('not_json', { cause })
  }
  if (!isObject(value)) throw new FetchFailure('not_an_object')
  return value
}
