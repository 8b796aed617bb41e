import type { IncomingMessage, ServerResponse } from 'node:http'
import type { CompiledRoute } from './route/router.js'
import type { EventSink } from '../events/event.js'
import type { PresentedToken } from './authn/presented.js'

/** The stages, in the only order they run (see order.ts). Each name is the <STAGE> of its error codes. */
export type StageName = 'normalize' | 'route' | 'sanitize' | 'limits' | 'authn' | 'authz' | 'forward'

/**
 * What authn verified: a bearer token, or on an `auth: certificate` route a client certificate
 * (authn/certificate.ts). Only authn writes it; later stages read it.
 */
export interface Identity {
  readonly issuer: string
  readonly issuerId: string
  readonly subject: string | undefined
  readonly clientId: string | undefined
  readonly scopes: ReadonlySet<string>
  readonly jti: string | undefined
  /** SHA-256 of the token, base64url, first 16 chars: what logs carry instead of the token. Undefined for a certificate identity. */
  readonly tokenDigest: string | undefined
  /** Token exp (or a certificate's notAfter) in epoch milliseconds, comparable with deps.now(). */
  readonly expiresAt: number
  readonly claims: Readonly<Record<string, unknown>>
  /** The client certificate thumbprint (`cnf.x5t#S256`, RFC 8705) the token is bound to: every request using it must present that certificate. */
  readonly boundCertificate?: string
  /** A certificate identity's certificate thumbprint (`x5t#S256`): what logs carry to name it. */
  readonly certificate?: string
  /** A certificate identity's names (`uri:…`, `dns:…`, `cn:…`), matched against the route's `certificates`. */
  readonly certificateNames?: readonly string[]
}

export interface RequestContext {
  readonly id: string
  /** W3C traceparent forwarded upstream (the client's when valid, else a new one). */
  readonly traceparent: string
  readonly traceId: string
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly method: string
  /** Client address after applying server.trustedProxies. */
  readonly clientIp: string
  /** Address of the TCP peer. */
  readonly peerIp: string
  readonly startedAt: number
  /** Canonical path, set by normalize. What route matches and what forward sends. */
  path: string
  /**
   * On a WebSocket handshake (http/websocket.ts), the bytes the client sent after it, for the
   * upstream once the tunnel opens; undefined on every other request.
   */
  readonly upgradeHead: Buffer | undefined
  /**
   * The request is a stream of an HTTP/2 connection (http/http2.ts), as the listener that took it
   * knows: the stages read this instead of testing the request's class each time.
   */
  readonly http2: boolean
  /** Raw query string, with its leading "?" or empty. */
  query: string
  route: CompiledRoute | undefined
  identity: Identity | undefined
  /** Digest of a presented token even when it failed to verify, for events. */
  tokenDigest: string | undefined
  /**
   * Who a token names whose signature verified but whose claims were refused (expired, another
   * audience, too long a lifetime): authentic, so its denial event says who it was. Never a
   * basis for access: ctx.identity stays unset.
   */
  refusedToken?: { readonly subject?: string; readonly clientId?: string; readonly issuer?: string; readonly jti?: string }
  /**
   * authn's memo of the bearer token this request presented (digest, decoded JWS), so that the
   * limits stage before authn and authn itself hash and decode it once. Only authn reads or writes it.
   */
  presentedToken?: PresentedToken
  /** Headers forward will send. sanitize fills it; stages write here, never to req.headers. */
  upstreamHeaders: Record<string, string | string[]>
  /** Status sent to the client, set by whoever answers. */
  status: number
  /** Upstream response time in ms, when forwarded. */
  upstreamMs: number | undefined
  /** RateLimit / RateLimit-Policy lists (members joined by ", ") built by the limits stages, for the response. */
  rateLimitFields?: { policy: string; limit: string }
  /** Id of the API key that authenticated the request (the "apiKey" limit key part reads it). */
  apiKeyId?: string
  /**
   * Set once the request's outcome is recorded (access line, metrics). A stage still running
   * after that (the listener interrupted the request, see Pipeline.interrupt) changes nothing.
   */
  over: boolean
}

export interface Deps {
  readonly now: () => number
  readonly events: EventSink
  readonly logger: import('pino').Logger
}

/** What a stage returns when it answered the request itself: no later stage runs. */
export const ANSWERED = Symbol('portcullis.answered')

export interface Stage {
  /** Stable name. It is also the <STAGE> part of every error code this stage raises. */
  readonly name: StageName
  /**
   * Request path. Return to continue; throw GatewayError to stop; return ANSWERED when this stage
   * wrote the whole answer itself (a CORS preflight), which ends the request there. Stay
   * synchronous when you can.
   */
  onRequest(ctx: RequestContext): void | Promise<void> | typeof ANSWERED
  /** Called once after config swap or shutdown to release resources. */
  close?(): Promise<void>
  /** Readiness of this stage (e.g. keys loaded). */
  ready?(): boolean
}
