import type { IncomingMessage } from 'node:http'

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
 * A chunked request body streamed to the upstream, cut when it passes the limit: undici then
 * aborts the upstream request and the client gets 413. A body with a Content-Length was already
 * checked by sanitize and streams as it is.
 */
export async function* limitedBody(req: IncomingMessage, maxBodyBytes: number): AsyncGenerator<Buffer> {
  let seen = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    seen += chunk.length
    if (seen > maxBodyBytes) throw new BodyTooLargeError()
    yield chunk
  }
}
