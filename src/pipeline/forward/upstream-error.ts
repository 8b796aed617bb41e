import { GatewayError } from '../../errors/gateway-error.js'
import { BODY_TOO_LARGE } from './body-limit.js'
import { GRPC_WEB_BAD_TEXT } from './grpc-web.js'
import { RESPONSE_TRANSFER_CODING } from './response-headers.js'

/**
 * Maps an undici / socket error to the gateway's answer. The client only ever sees the code; the
 * machine `reason` goes to the security event. Upstream error text never reaches the client.
 * Returns `known: false` for errors without a mapping, which the caller logs for the operator.
 */
export function mapUpstreamError(err: unknown, afterHeaders: boolean): { error: GatewayError; known: boolean } {
  const code = errorCode(err)
  // Not an upstream failure: the client's chunked body passed server.maxBodyBytes (body-limit.ts).
  if (code === BODY_TOO_LARGE && !afterHeaders) {
    return { error: new GatewayError('ERR_SANITIZE_TOO_LARGE', { reason: 'chunked_body', detail: 'The request body is too large.' }), known: true }
  }
  // Nor this: a gRPC-Web `-text` call whose body is not base64 (grpc-web.ts).
  if (code === GRPC_WEB_BAD_TEXT && !afterHeaders) {
    return { error: new GatewayError('ERR_SANITIZE_REJECTED', { reason: 'grpc_web_text', detail: 'The gRPC-Web text body is not base64.' }), known: true }
  }
  let reason: string | undefined
  let timeout = false
  // undici's HTTP parser errors carry no code (it looks their llhttp error up by number in a
  // table keyed by name): they are told by their name.
  switch (code ?? (isParserError(err) ? PARSER_ERROR : undefined)) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      reason = 'connect_timeout'
      timeout = true
      break
    case 'UND_ERR_HEADERS_TIMEOUT':
      reason = 'headers_timeout'
      timeout = true
      break
    case 'UND_ERR_BODY_TIMEOUT':
      reason = 'body_timeout'
      timeout = true
      break
    case 'ECONNREFUSED':
      reason = 'connect_refused'
      break
    case 'ECONNRESET':
    case 'EPIPE':
      reason = 'connection_reset'
      break
    case 'UND_ERR_SOCKET':
      reason = 'socket_closed'
      break
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      reason = 'dns_failure'
      break
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EHOSTDOWN':
    case 'ENETDOWN':
      reason = 'unreachable'
      break
    case 'ETIMEDOUT':
      reason = 'connect_timeout'
      timeout = true
      break
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
      reason = 'response_length_mismatch'
      break
    case 'UND_ERR_RES_EXCEEDED_MAX_SIZE':
      reason = 'response_too_large'
      break
    case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
      reason = 'request_length_mismatch'
      break
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED':
      reason = 'pool_closed'
      break
    case 'HPE_INVALID_CONSTANT':
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
    case 'HPE_INVALID_STATUS':
    case 'HPE_INVALID_VERSION':
    case 'HPE_HEADER_OVERFLOW':
    case PARSER_ERROR:
    case RESPONSE_TRANSFER_CODING:
    case 'UND_ERR_HEADERS_OVERFLOW':
    case 'ERR_INVALID_CHAR':
    case 'ERR_INVALID_HTTP_TOKEN':
      reason = 'invalid_response'
      break
    // OpenSSL's certificate verification failures whose names do not say CERT.
    case 'UNABLE_TO_VERIFY_LEAF_SIGNATURE':
    case 'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY':
    case 'INVALID_CA':
    case 'PATH_LENGTH_EXCEEDED':
    case 'INVALID_PURPOSE':
    case 'HOSTNAME_MISMATCH':
      reason = 'tls_failure'
      break
    default:
      if (code !== undefined && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || code.includes('CERT'))) {
        reason = 'tls_failure'
      }
  }
  const known = reason !== undefined
  reason ??= 'upstream_error'
  // Once the status line went out, a failure can only cut the connection; the reason says so.
  if (afterHeaders && !timeout) reason = 'response_aborted'
  const error = timeout
    ? new GatewayError('ERR_FORWARD_TIMEOUT', { reason, cause: err })
    : new GatewayError('ERR_FORWARD_UNAVAILABLE', { reason, cause: err })
  return { error, known }
}

/** The name of undici's error for a malformed upstream response, which has no code. */
const PARSER_ERROR = 'HTTPParserError'

function isParserError(err: unknown): boolean {
  return err !== null && typeof err === 'object' && (err as { name?: unknown }).name === PARSER_ERROR
}

/** The error code, looking inside an AggregateError (happy-eyeballs connect tries every address). */
export function errorCode(err: unknown): string | undefined {
  if (err === null || typeof err !== 'object') return undefined
  const code = (err as { code?: unknown }).code
  if (typeof code === 'string') return code
  const inner = (err as { errors?: unknown }).errors
  if (Array.isArray(inner) && inner.length > 0) return errorCode(inner[0])
  return undefined
}
