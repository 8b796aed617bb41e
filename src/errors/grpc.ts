import { catalog, type ErrorCode } from './catalog.js'
import type { ProblemResponse } from './problem.js'

/**
 * A refusal in the form gRPC clients read (gRPC over HTTP/2, "Responses"): HTTP 200 whose head
 * carries grpc-status and grpc-message and ends the stream (Trailers-Only). A gRPC client never
 * reads a problem+json body; from a bare 401 or 429 it would only learn "received HTTP status
 * code 429", and take 429 for UNAVAILABLE, which tells it to retry at once.
 */

/** Whether a request is a gRPC call (its content type is application/grpc, or application/grpc+proto and the like). */
export function isGrpcRequest(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/grpc(?:[+;]|$)/i.test(contentType)
}

/**
 * The gRPC status code (grpc/doc/statuscodes.md) that says what an HTTP refusal of the gateway says:
 * the gateway knows why it refused, so 429 (a rate limit or quota) is RESOURCE_EXHAUSTED and 504
 * DEADLINE_EXCEEDED, where the generic HTTP-to-gRPC mapping gives UNAVAILABLE for both.
 */
export function grpcStatusOf(httpStatus: number): number {
  switch (httpStatus) {
    case 400:
      return 3 // INVALID_ARGUMENT
    case 401:
      return 16 // UNAUTHENTICATED
    case 403:
      return 7 // PERMISSION_DENIED
    case 404:
    case 405:
    case 501:
      return 12 // UNIMPLEMENTED
    case 408:
    case 504:
      return 4 // DEADLINE_EXCEEDED
    case 413:
    case 429:
    case 431:
      return 8 // RESOURCE_EXHAUSTED
    case 500:
      return 13 // INTERNAL
    case 502:
    case 503:
      return 14 // UNAVAILABLE
    default:
      return 2 // UNKNOWN
  }
}

/** grpc-message is percent-encoded: every byte outside printable ASCII, and %, as %XX. */
export function percentEncoded(text: string): string {
  return Buffer.from(text, 'utf8').reduce((out, b) => out + (b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`), '')
}

/**
 * The head of a gRPC refusal: the problem's own fields (request id, WWW-Authenticate, Retry-After,
 * RateLimit, cache-control) without its body's, plus the gRPC status and a message that names the
 * stable error code.
 */
export function grpcRefusalHeaders(problem: ProblemResponse, code: ErrorCode, contentType = 'application/grpc'): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(problem.headers)) {
    if (name !== 'content-type' && name !== 'content-length' && name !== 'x-content-type-options') headers[name] = value
  }
  headers['content-type'] = contentType
  headers['grpc-status'] = String(grpcStatusOf(problem.status))
  headers['grpc-message'] = percentEncoded(`${code}: ${catalog[code].title}`)
  return headers
}
