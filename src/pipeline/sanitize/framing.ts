import type { IncomingHttpHeaders } from 'node:http'
import { GatewayError } from '../../errors/gateway-error.js'
import { requestHostName, UNROUTABLE } from '../route/hosts.js'

const DIGITS = /^[0-9]+$/

function rejected(reason: string, detail = 'The request framing is ambiguous.'): GatewayError {
  return new GatewayError('ERR_SANITIZE_REJECTED', { reason, detail })
}

/**
 * Request smuggling defence (RFC 9112 §6.3, §11.2): a message whose length two parsers could read
 * differently is refused instead of forwarded. node's parser already refuses most of these; this
 * check keeps the guarantee whatever reaches the stage.
 * - Content-Length together with Transfer-Encoding (§6.3 item 3: "ought to be handled as an error").
 * - A Transfer-Encoding other than plain `chunked`: undici re-frames the body as chunked, so any
 *   other coding would be silently lost (§6.1: a server that does not understand it answers 501;
 *   we refuse it the same way as any other ambiguous framing).
 * - Several Content-Length fields that disagree, or one that is not a plain number (§6.3 item 5).
 */
export function checkFraming(headers: IncomingHttpHeaders, rawHeaders: readonly string[], httpVersion: string): void {
  // HTTP/1.0 and HTTP/1.1 only: node's parser also takes HTTP/0.9-style request lines and other
  // versions (2.0), whose framing rules are not the ones checked here.
  if (httpVersion !== '1.1' && httpVersion !== '1.0') throw rejected('http_version')
  const te = headers['transfer-encoding']
  const cl = headers['content-length']
  if (te !== undefined) {
    if (cl !== undefined) throw rejected('content_length_with_transfer_encoding')
    // §6.1: an HTTP/1.0 message with Transfer-Encoding "MUST" be treated as faulty framing, since
    // HTTP/1.0 intermediaries do not know chunked and would read the chunks as the next request.
    if (httpVersion === '1.0') throw rejected('transfer_encoding_http10')
    if (te.trim().toLowerCase() !== 'chunked') throw rejected('transfer_encoding')
    return
  }
  if (cl === undefined) return
  if (!DIGITS.test(cl)) throw rejected('invalid_content_length')
  // node keeps only the first Content-Length in req.headers: look at every raw occurrence.
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      const v = rawHeaders[i + 1].trim()
      if (v !== cl && (!DIGITS.test(v) || Number(v) !== Number(cl))) throw rejected('conflicting_content_length')
    }
  }
}

/**
 * RFC 9112 §3.2: a server MUST answer 400 to a request with more than one Host field line or
 * with an invalid Host. The value becomes the upstream's X-Forwarded-Host, which services behind
 * the gateway believe (it is their trusted proxy) to build links and check allowed hosts: it has
 * to be one host, as the client's other intermediaries read it.
 * - uri-host [ ":" port ] (RFC 3986 §3.2.2): an IP literal in brackets, or a reg-name, which
 *   here may not be empty (an "http" URI needs a host, RFC 9110 §4.2.1) and may not hold a
 *   comma, the list separator of X-Forwarded-Host.
 */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})+)(?::[0-9]{0,5})?$/

export function checkHost(headers: IncomingHttpHeaders, rawHeaders: readonly string[], httpVersion: string): void {
  const host = headers.host
  if (host === undefined) {
    // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request that lacks Host. node would
    // too (requireHostHeader), in plain text; the listener leaves it to this stage, so the answer
    // is problem+json and the refusal an event like every other.
    if (httpVersion === '1.1') throw rejected('missing_host', 'An HTTP/1.1 request must carry a Host header.')
    return
  }
  const detail = 'The Host header is invalid.'
  if (!HOST.test(host)) throw rejected('invalid_host', detail)
  // node keeps only the first Host in req.headers: count the raw field lines.
  let count = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name.length === 4 && name.toLowerCase() === 'host' && ++count > 1) throw rejected('multiple_host', detail)
  }
}

/**
 * checkHost for an HTTP/2 request (http/http2.ts), whose authority comes as the `:authority`
 * pseudo-header field, a Host field, or both. RFC 9113 §8.3.1: a Host that names another
 * authority than `:authority` makes the request malformed (two intermediaries could route it by
 * different ones); neither is as much a missing Host as in HTTP/1.1. The value the request view
 * holds as `host` must be one valid host, as checkHost has it.
 */
export function checkHttp2Host(headers: IncomingHttpHeaders, rawHeaders: readonly string[]): void {
  const detail = 'The Host header is invalid.'
  let authority: string | undefined
  let host: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name === ':authority') authority = rawHeaders[i + 1]
    else if (name === 'host') {
      if (host !== undefined) throw rejected('multiple_host', detail)
      host = rawHeaders[i + 1]
    }
  }
  if (authority !== undefined && host !== undefined && authority.toLowerCase() !== host.toLowerCase()) {
    throw rejected('host_authority_mismatch', 'The Host header names another authority than :authority.')
  }
  const value = headers.host
  if (value === undefined) throw rejected('missing_host', 'An HTTP/2 request must carry :authority or a Host header.')
  if (!HOST.test(value)) throw rejected('invalid_host', detail)
}

/**
 * With routes by host (route/hosts.ts), the route was chosen by the Host the gateway received,
 * and the upstream is told a trusted proxy's X-Forwarded-Host. Both must name the same host, or
 * one host's request would run under another host's routes (a proxy that rewrites Host, or one
 * that passes a client's X-Forwarded-Host on). The first element of a list is the client's.
 */
export function checkForwardedHost(forwardedHost: string, host: string | undefined): void {
  const first = forwardedHost.split(',', 1)[0].trim()
  const named = requestHostName(first)
  if (named === UNROUTABLE || named !== requestHostName(host)) {
    throw rejected('forwarded_host_mismatch', 'X-Forwarded-Host names another host than Host.')
  }
}

/**
 * A declared body over the limit is refused before anything is forwarded (RFC 9110 §15.5.14,
 * 413 Content Too Large). Chunked bodies, whose size is unknown up front, are counted while they
 * stream (forward/body-limit.ts).
 */
export function checkDeclaredLength(headers: IncomingHttpHeaders, maxBodyBytes: number): void {
  const cl = headers['content-length']
  if (maxBodyBytes > 0 && cl !== undefined && Number(cl) > maxBodyBytes) {
    throw new GatewayError('ERR_SANITIZE_TOO_LARGE', { reason: 'content_length', detail: `The request body exceeds ${maxBodyBytes} bytes.` })
  }
}

/**
 * RFC 9112 §6.3: a request has a body exactly when it carries Content-Length or Transfer-Encoding
 * (checkFraming has refused both together). Deciding by framing, not by method, streams a DELETE
 * with a body and never turns a body-less POST into an empty chunked upload.
 */
export function hasBody(headers: IncomingHttpHeaders | undefined): boolean {
  if (headers === undefined) return false
  if (headers['transfer-encoding'] !== undefined) return true
  const cl = headers['content-length']
  return cl !== undefined && cl !== '0'
}
