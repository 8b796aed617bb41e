import { IncomingMessage } from 'node:http'
import { parseAuthorization } from '@portcullis/verify/rules'

const kAsked = Symbol('portcullis.upgradeAsked')

/** `websocket` as one element of the Upgrade list (RFC 9110 §7.8: protocol names, any case). */
const WEBSOCKET_LISTED = /(?:^|,)[ \t]*websocket[ \t]*(?:,|$)/i

/**
 * Whether a request is a WebSocket opening handshake the gateway may tunnel (RFC 6455 §4.1): an
 * HTTP/1.1 GET asking to upgrade to `websocket`, with no body (a handshake has none, and node would hand
 * any body over as tunnel bytes, unframed). node's parser has checked that Connection lists
 * `upgrade` before it asks.
 */
export function isWebSocketHandshake(req: IncomingMessage): boolean {
  const h = req.headers
  return req.method === 'GET' && req.httpVersionMinor === 1 && req.httpVersionMajor === 1 && h['content-length'] === undefined && h['transfer-encoding'] === undefined && WEBSOCKET_LISTED.test(h.upgrade ?? '')
}

/**
 * The listener's request class. node decides whether a request leaves HTTP for another protocol by
 * reading `req.upgrade` once its headers are parsed, and with an `upgrade` listener it hands every
 * request that asked (Connection: upgrade plus Upgrade) to that listener, body or not. Only
 * WebSocket handshakes are meant for it: every other upgrade request (an `Upgrade: h2c` that
 * `curl --http2` sends, a POST with a body) stays an ordinary request, served as before, its
 * Upgrade header dropped as hop-by-hop. node 20 has no per-request choice (its
 * `shouldUpgradeCallback` came later), so the flag the parser sets is kept aside here and read
 * back only for a WebSocket handshake.
 */
export class GatewayIncomingMessage extends IncomingMessage {
  private [kAsked]: boolean | null = null

  // @ts-expect-error an accessor in place of IncomingMessage's data property, on purpose (above).
  override get upgrade(): boolean {
    // CONNECT keeps node's own handling (the listener's 'connect' answers it with a 501).
    return this[kAsked] === true && (this.method === 'CONNECT' || isWebSocketHandshake(this))
  }

  set upgrade(asked: boolean) {
    this[kAsked] = asked
  }

  /**
   * The request asked to upgrade and is served as an ordinary request instead. node's parser stops
   * at the end of such a request and node does not parse the rest of the bytes it read with it:
   * a request the client pipelined behind it in the same packet would be lost, and the client
   * left waiting for its answer. So this answer closes the connection (server.ts).
   */
  get upgradeDeclined(): boolean {
    return this[kAsked] === true && !this.upgrade
  }
}

// undici recognizes node's request object by its prototype's `constructor` (util.destroy): when it
// stops reading a request body (the upstream answered early) it then detaches the socket before
// destroying the stream, and the client's connection stays open for its next request. The
// subclass must be recognized the same way (hostile-upstream.test.ts checks that connection).
Object.defineProperty(GatewayIncomingMessage.prototype, 'constructor', { value: IncomingMessage, writable: true, configurable: true, enumerable: false })

/**
 * The subprotocol element that carries a bearer token on a WebSocket handshake, the convention
 * Kubernetes defined for browsers: their WebSocket API can set no header but the list of
 * subprotocols. The token follows the prefix, base64url-encoded without padding.
 */
export const TOKEN_PROTOCOL_PREFIX = 'base64url.bearer.authorization.k8s.io.'

const kProtocolToken = Symbol('portcullis.protocolToken')
const BASE64URL = /^[A-Za-z0-9_-]+$/

/**
 * On a WebSocket handshake, takes every token element out of Sec-WebSocket-Protocol (the rest of
 * the list goes on to the upstream, which picks its subprotocol from it) and hands each token to
 * authentication as an Authorization field, as if the client had sent the header: one code path
 * verifies both, a client that also sent the header (or two elements) has two credentials and is
 * refused, and the upstream receives the token the usual way. A route that does not set
 * `websocketTokenProtocol` refuses a request that used it (authn). An element that does not
 * decode to a bearer token becomes an empty one, which authn refuses as malformed.
 */
export function takeProtocolTokens(req: IncomingMessage): void {
  const offered = req.headers['sec-websocket-protocol']
  if (offered === undefined || !offered.includes(TOKEN_PROTOCOL_PREFIX)) return
  const kept: string[] = []
  let found = 0
  for (const raw of offered.split(',')) {
    const element = raw.trim()
    if (!element.startsWith(TOKEN_PROTOCOL_PREFIX)) {
      if (element !== '') kept.push(element)
      continue
    }
    const encoded = element.slice(TOKEN_PROTOCOL_PREFIX.length)
    const token = BASE64URL.test(encoded) ? Buffer.from(encoded, 'base64url').toString('latin1') : ''
    // Judged by the one Authorization syntax authn uses (RFC 6750 §2.1).
    const value = parseAuthorization(`Bearer ${token}`).kind === 'bearer' ? `Bearer ${token}` : 'Bearer '
    req.rawHeaders.push('Authorization', value)
    if (req.headers.authorization === undefined) req.headers.authorization = value
    found++
  }
  if (kept.length > 0) req.headers['sec-websocket-protocol'] = kept.join(', ')
  else delete req.headers['sec-websocket-protocol']
  ;(req as IncomingMessage & { [kProtocolToken]?: boolean })[kProtocolToken] = found > 0
}

/** Whether the request's bearer token came in its Sec-WebSocket-Protocol (takeProtocolTokens). */
export function usedProtocolToken(req: IncomingMessage): boolean {
  return (req as IncomingMessage & { [kProtocolToken]?: boolean })[kProtocolToken] === true
}
