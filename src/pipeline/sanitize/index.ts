import type { Config } from '../../config/schema.js'
import type { ClientAddressResolver } from '../../http/client-address.js'
import type { Deps, RequestContext, Stage } from '../stage.js'
import { normalizeIp } from '../../http/client-address.js'
import { peerCertificateOf } from '../../http/peer-certificate.js'
import { appendForwarded, forwardedFor, forwardedProto } from './forwarded.js'
import { checkDeclaredLength, checkForwardedHost, checkFraming, checkHost, checkHttp2Host } from './framing.js'
import { createHeaderMatcher } from './header-matcher.js'
import { connectionListed, HOP_BY_HOP } from './hop-by-hop.js'

/**
 * Headers the gateway writes itself. Whatever the client sent under these names is dropped first,
 * so an upstream only ever sees the gateway's value: identity reaches a service only as the gateway
 * states it. x-forwarded-* covers X-Forwarded-User and any other forwarding claim, too. RFC 9440's
 * Client-Cert and Client-Cert-Chain are the TLS terminator's to set (§4: a client's are removed),
 * whatever names identity.headers.clientCertificate and clientCertificateChain give the gateway's own.
 */
const GATEWAY_OWNED = ['x-request-id', 'traceparent', 'tracestate', 'x-forwarded-*', 'forwarded', 'x-real-ip', 'via', 'client-cert', 'client-cert-chain']

/**
 * Other claims about the client's address, which upstream frameworks and CDNs read as the real
 * client IP. Only the gateway knows the peer (X-Forwarded-For), so a client's value never passes.
 */
const ADDRESS_CLAIMS = ['x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'x-cluster-client-ip', 'fastly-client-ip']

/**
 * Fields that make the upstream treat the request as another method or path than the one the
 * gateway routed and authorized: method overrides (honoured on POST by Rails, Symfony, Laravel,
 * Express's method-override) and URL overrides (IIS URL Rewrite, older Symfony and Zend). Scopes
 * are granted per method and path, so these would bypass them; they are never forwarded.
 */
const REQUEST_OVERRIDES = ['x-http-method-override', 'x-http-method', 'x-method-override', 'x-original-url', 'x-rewrite-url']

/** The scheme the client used to reach this listener: a TLS socket is `encrypted`. */
const ownProto = (ctx: RequestContext): string => ((ctx.req.socket as { encrypted?: boolean } | null)?.encrypted === true ? 'https' : 'http')
const VIA_NAME = 'portcullis'
const UNDERSCORES = /_/g
const TE_TRAILERS = /(?:^|,)\s*trailers\s*(?:;|,|$)/i

/**
 * Builds ctx.upstreamHeaders from the inbound request: removes hop-by-hop fields, the Host (forward
 * sends the upstream's), every client-supplied identity or forwarding claim, and sets the
 * gateway's request id, trace context and X-Forwarded-* fields. Refuses ambiguous framing.
 */
export function createSanitizeStage(config: Config, _deps: Deps, resolver: ClientAddressResolver) {
  const identity = config.identity
  // Names are matched in their dashed spelling: a configured `x_tenant` also strips `X-Tenant`, and
  // (below) a client's `X_Tenant` is judged as `x-tenant`, since CGI-style servers read them as one.
  // `expect` is answered by node itself (100-continue) and undici refuses to send it.
  const configured = [...identity.stripHeaders, ...Object.values(identity.headers), ...GATEWAY_OWNED, ...ADDRESS_CLAIMS, ...REQUEST_OVERRIDES]
  const dropped = createHeaderMatcher([...HOP_BY_HOP, 'host', 'expect', ...configured.map((n) => n.replace(UNDERSCORES, '-'))]).matches
  const via11 = `1.1 ${VIA_NAME}`
  const via2 = `2 ${VIA_NAME}`
  // RFC 9440 field names, when verified client certificates are forwarded at all.
  const certHeaders = identity.forwardClientCertificate
    ? { cert: identity.headers.clientCertificate.toLowerCase(), chain: identity.headers.clientCertificateChain.toLowerCase() }
    : undefined
  const maxBodyBytes = config.server.maxBodyBytes
  // Routes by host choose by the Host received; the upstream is told the trusted proxy's X-Forwarded-Host.
  const routesByHost = config.routes.some((r) => r.hosts !== undefined)

  return {
    name: 'sanitize',
    onRequest(ctx: RequestContext): void {
      const req = ctx.req
      const h = req.headers
      // An HTTP/2 stream (http/http2.ts): nghttp2 has checked its framing.
      const http2 = ctx.http2
      try {
        if (http2) checkHttp2Host(h, req.rawHeaders)
        else {
          checkFraming(h, req.rawHeaders, req.httpVersion)
          checkHost(h, req.rawHeaders, req.httpVersion)
        }
      } catch (err) {
        // A message the gateway refuses to read one way is not one to read what follows it by:
        // the connection is closed after the answer, even when node read the whole of it.
        ctx.res.shouldKeepAlive = false
        throw err
      }
      checkDeclaredLength(h, maxBodyBytes)
      const listed = connectionListed(h.connection)
      const out: Record<string, string | string[]> = {}
      for (const name in h) {
        // CGI-style servers (WSGI, Rack, PHP) read X_Auth_Subject and X-Auth-Subject as one
        // variable (HTTP_X_AUTH_SUBJECT): a name with an underscore is judged by its dashed twin.
        if (dropped(name.indexOf('_') === -1 ? name : name.replace(UNDERSCORES, '-'))) continue
        if (listed !== undefined && listed.includes(name)) continue
        const value = h[name]
        if (value !== undefined) out[name] = value
      }

      // RFC 9110 §10.1.4: "trailers" is the only TE value that is not about this connection.
      const te = h.te
      if (typeof te === 'string' && TE_TRAILERS.test(te)) out.te = 'trailers'

      out['x-request-id'] = ctx.id
      out.traceparent = ctx.traceparent
      // W3C Trace Context §3.3: tracestate belongs to the trace the client started; keep it only
      // when the client's traceparent was valid (its trace-id is the one we continue).
      const tracestate = h.tracestate
      const clientParent = h.traceparent
      if (tracestate !== undefined && typeof clientParent === 'string' && clientParent.startsWith(ctx.traceId, 3)) {
        out.tracestate = tracestate
      }

      // IPv4-mapped addresses are written as plain IPv4, as the client resolver compares them.
      const peer = normalizeIp(ctx.peerIp)
      const trusted = resolver.trusts(peer)
      out['x-forwarded-for'] = forwardedFor(h['x-forwarded-for'], peer, trusted)
      out['x-forwarded-proto'] = forwardedProto(h['x-forwarded-proto'], trusted, ownProto(ctx))
      const forwardedHost = trusted ? h['x-forwarded-host'] : undefined
      if (routesByHost && forwardedHost !== undefined) checkForwardedHost(Array.isArray(forwardedHost) ? forwardedHost[0] : forwardedHost, h.host)
      const host = forwardedHost ?? h.host
      if (host !== undefined) out['x-forwarded-host'] = host
      // RFC 7239 Forwarded: believed (and extended) only from a trusted proxy, dropped otherwise.
      const forwarded = h.forwarded
      if (trusted && forwarded !== undefined) out.forwarded = appendForwarded(forwarded, peer)
      // RFC 9110 §7.6.3: a gateway MUST send Via in each inbound request it forwards.
      // (RFC 9110 §7.6.3: the received protocol's version, which for HTTP/2 is "2".)
      const via = http2 ? via2 : req.httpVersion === '1.1' ? via11 : `${req.httpVersion} ${VIA_NAME}`
      const prevVia = h.via
      out.via = prevVia === undefined ? via : `${prevVia}, ${via}`
      if (certHeaders !== undefined) {
        const cert = peerCertificateOf(req)
        if (cert?.clientCertField !== undefined) {
          out[certHeaders.cert] = cert.clientCertField
          if (cert.clientCertChainField !== undefined) out[certHeaders.chain] = cert.clientCertChainField
        }
      }
      ctx.upstreamHeaders = out
    },
  } satisfies Stage
}
