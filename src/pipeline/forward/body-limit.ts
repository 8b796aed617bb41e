import { finished, Transform, type Readable } from 'node:stream'

/** The code of BodyTooLargeError, which upstream-error.ts recognizes once undici hands it back. */
export const BODY_TOO_LARGE = 'PORTCULLIS_BODY_TOO_LARGE'

/** Thrown while streaming a chunked request body that passes server.maxBodyBytes. */
export class BodyTooLargeError extends Error {
  readonly code = BODY_TOO_LARGE
  constructor() {
    super('request body too large')
  }
}

/**
 * A request body streamed to the upstream through `transform`: the client's request is piped
 * through it, and a request that breaks off (its client left, its stream was reset) fails it, so
 * undici aborts the upstream request rather than send a body cut short as if complete.
 *
 * A Transform, not a stream made from an async generator (`Readable.from`): undici's HTTP/2
 * client spins at full CPU, for good, when such a stream fails while it sends the body to an
 * HTTP/2 upstream (undici 7.30, node 20: the body's error, e.g. a body over the limit, left node's
 * HTTP/2 session asking for data forever, and the event loop with it). A Transform failing the
 * same way does not (test/e2e/upstream-http2.test.ts: the gateway serves on after such failures).
 */
export function transformedBody(req: Readable, transform: (chunk: Buffer) => Buffer | Error, flush?: () => Buffer | Error): Transform {
  const body = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const out = transform(chunk)
      if (out instanceof Error) done(out)
      else done(null, out.length > 0 ? out : undefined)
    },
    flush(done) {
      const out = flush?.()
      if (out instanceof Error) done(out)
      else done(null, out !== undefined && out.length > 0 ? out : undefined)
    },
  })
  // Once the body failed the client's request is not read further here (a refusal discards it).
  body.once('error', () => req.unpipe(body))
  finished(req, (err) => {
    if (err) body.destroy(err)
  })
  req.pipe(body)
  return body
}

/**
 * A chunked request body streamed to the upstream, cut when it passes the limit: undici then
 * aborts the upstream request and the client gets 413. A body with a Content-Length was already
 * checked by sanitize and streams as it is.
 */
export function limitedBody(req: Readable, maxBodyBytes: number): Transform {
  let seen = 0
  return transformedBody(req, (chunk) => {
    seen += chunk.length
    return seen > maxBodyBytes ? new BodyTooLargeError() : chunk
  })
}
