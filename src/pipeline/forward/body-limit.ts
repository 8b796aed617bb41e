import { finished, Transform, type Readable, type Writable } from 'node:stream'

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
 * A request body on its way to the upstream, which can cut the upstream request it feeds.
 *
 * Why: undici's HTTP/2 client aborts a request by closing its stream (`stream.close()`), which
 * first ends the stream's writable side. With the body still piped in, that sends END_STREAM (a
 * body cut short reaches the upstream as if complete) and can leave node's HTTP/2 session packing
 * data in a loop at full CPU, its memory growing until the process dies (undici 7.30, node 20; a
 * client resetting an upload was enough). undici pipes a stream body into the HTTP/2 stream, so
 * the body sees that stream: cut() destroys it with an error first (RST_STREAM INTERNAL_ERROR, no
 * END_STREAM), and undici's own close() then finds it closed. The forward handler cuts in onError,
 * which undici calls before it closes the stream, on every abort (a client gone, a timeout, a body
 * that failed). Over HTTP/1.1 undici writes the body to the socket itself (no pipe, nothing to cut;
 * an aborted request there destroys its connection).
 */
export class UpstreamBody extends Transform {
  private sink: Writable | undefined = undefined

  override pipe<T extends NodeJS.WritableStream>(destination: T, options?: { end?: boolean }): T {
    this.sink = destination as unknown as Writable
    return super.pipe(destination, options)
  }

  /** Ends the upstream request this body feeds as failed, if it is an HTTP/2 stream still open. */
  cut(err: Error): void {
    const sink = this.sink
    if (sink !== undefined && !sink.destroyed) sink.destroy(err)
  }
}

/**
 * The request body as undici sends it upstream, when it needs more than the client's request
 * passed as it is: one Transform that counts a chunked body against `maxBodyBytes` (0: not
 * counted; a body with a Content-Length was checked by sanitize) and decodes it with `decoder`
 * (a gRPC-Web `-text` call), and that an HTTP/2 upstream's stream can be cut through. A request
 * that breaks off (its client left, its stream was reset) fails it, so undici aborts the upstream
 * request rather than send a body cut short as if complete; a body over the limit fails it with
 * BodyTooLargeError (413).
 *
 * A Transform, not a stream made from an async generator (`Readable.from`): undici's HTTP/2
 * client spins at full CPU, for good, when such a stream fails while it sends the body to an
 * HTTP/2 upstream (undici 7.30, node 20). undici pipes a Transform into the stream and destroys
 * both when it fails (test/e2e/upstream-http2.test.ts: the gateway serves on after such failures).
 */
export function upstreamBody(req: Readable, maxBodyBytes: number, decoder?: BodyDecoder): UpstreamBody {
  let seen = 0
  const body: UpstreamBody = new UpstreamBody({
    transform(chunk: Buffer, _encoding, done) {
      if (maxBodyBytes > 0 && (seen += chunk.length) > maxBodyBytes) return done(new BodyTooLargeError())
      const out = decoder === undefined ? chunk : decoder.push(chunk)
      if (out instanceof Error) done(out)
      else done(null, out.length > 0 ? out : undefined)
    },
    flush(done) {
      const out = decoder?.end()
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

/** Decodes a request body as it streams (grpc-web.ts, Base64Decoder): an Error fails the body. */
export interface BodyDecoder {
  push(chunk: Buffer): Buffer | Error
  end(): Buffer | Error
}
