import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { LimitsSchema, RouteLimitsField } from '../pipeline/limits/config.js'
import { InternalTokensSchema, UpstreamAudienceField, UpstreamTokenField } from '../tokens/config.js'
import { PATTERNS } from './patterns.js'

/**
 * The one config schema. Types are derived from it (Static<>), so checks and types never drift.
 * Every object is closed (additionalProperties: false): an unknown field is an error, because a
 * misspelt security setting silently ignored is a hole. Defaults live here and are applied at load.
 */
const closed = { additionalProperties: false } as const
const Ms = (def: number, description: string) => Type.Integer({ minimum: 1, default: def, description })

export const HttpMethod = Type.Union(
  ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'].map((m) => Type.Literal(m)),
)
export type HttpMethod = Static<typeof HttpMethod>

export const Algorithm = Type.Union(
  ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'HS256', 'HS384', 'HS512', 'none'].map(
    (a) => Type.Literal(a),
  ),
  { description: 'JWS algorithm. "none" is always refused; HMAC (HS*) algorithms only when acknowledged in security.acknowledge.' },
)
export type Algorithm = Static<typeof Algorithm>

/**
 * Cipher suites a TLS listener may offer: the TLS 1.3 suites, and for TLS 1.2 only forward-secret
 * AEAD suites (Mozilla's "intermediate" profile). node's default list also accepts RSA key
 * exchange and CBC suites under HIGH. A config may narrow this list, never widen it.
 */
export const TLS13_CIPHERS = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'] as const
export const TLS12_CIPHERS = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
] as const

export const ListenerTlsSchema = Type.Object(
  {
    cert: Type.String({
      minLength: 1,
      description: 'PEM certificate chain, leaf first; usually a ${file:PATH} reference. Re-read on every reload (SIGHUP, --watch), so a renewed certificate applies without a restart.',
    }),
    key: Type.String({
      minLength: 1,
      description: 'PEM private key of the certificate, unencrypted; a ${file:PATH} or ${env:NAME} reference (written inline it is the lint error tls-key-inline). Re-read on every reload.',
    }),
    minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], {
      default: 'TLSv1.2',
      description: 'Oldest TLS version a client may use; older ones fail the handshake.',
    }),
    ciphers: Type.Array(Type.Union([...TLS13_CIPHERS, ...TLS12_CIPHERS].map((c) => Type.Literal(c))), {
      minItems: 1,
      uniqueItems: true,
      default: [...TLS13_CIPHERS, ...TLS12_CIPHERS],
      description:
        'Cipher suites offered (among them, the client\'s preference decides): TLS 1.3 suites (TLS_*) and forward-secret AEAD suites for TLS 1.2 (ECDHE-*). Narrow the default list, for instance to AES-256 only; weaker suites cannot be named.',
    }),
    unknownServerNames: Type.Union([Type.Literal('default'), Type.Literal('refuse')], {
      default: 'default',
      description:
        'A client that asks for a server name (SNI) no sni entry and not the listener\'s own certificate covers, or for none: default: gets cert/key. refuse: its handshake fails before any certificate is shown (scanners that connect by address learn no name).',
    }),
    http2: Type.Boolean({
      default: false,
      description:
        'Also serve HTTP/2 on this listener (ALPN h2, next to http/1.1 for clients that do not offer it). Each stream runs the same pipeline; upstreams are reached over HTTP/1.1. Changing it needs a restart.',
    }),
    clientCertificates: Type.Union([Type.Literal('none'), Type.Literal('request'), Type.Literal('require')], {
      default: 'none',
      description:
        'Client certificates (mutual TLS). none: not asked for. request: asked for and optional; any certificate is accepted, and tokens bound to one (cnf x5t#S256, RFC 8705) need it. require: a certificate issued by clientCa is needed to connect at all.',
    }),
    clientCa: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM certificates of the CAs that issue client certificates; needed for clientCertificates: require. Usually a ${file:PATH} reference.' }),
    ),
    clientCrl: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'PEM certificate revocation lists (RFC 5280): a revoked client certificate is not verified. Needs clientCa. Once set, every CA of a chain (clientCa and intermediates) needs a current CRL here: a certificate whose issuer has none, or whose CRL is past its nextUpdate, is not verified either (fail closed). Re-read on every reload. Usually a ${file:PATH} reference.',
      }),
    ),
    sni: Type.Optional(
      Type.Array(
        Type.Object(
          {
            serverNames: Type.Array(
              Type.String({
                // A DNS name (RFC 1123 labels), or *. and one: a wildcard for exactly one label.
                pattern: '^(\\*\\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$',
                maxLength: 253,
                description: 'A server name (case-insensitive), or *.name for any one label in front of name (not name itself).',
              }),
              { minItems: 1, description: 'Names (case-insensitive) this certificate serves; *.name covers exactly one label in front of name. A name may appear in one entry only.' },
            ),
            cert: Type.String({ minLength: 1, description: 'PEM certificate chain for these names, leaf first; re-read on every reload.' }),
            key: Type.String({ minLength: 1, description: 'Its PEM private key, unencrypted; a ${file:PATH} or ${env:NAME} reference (inline: tls-key-inline).' }),
          },
          closed,
        ),
        {
          minItems: 1,
          description:
            'More certificates, chosen by the server name the client asks for (SNI): an exact name first, then a wildcard. A client asking for no name, or another one, gets cert/key. minVersion, clientCertificates and clientCa apply to every certificate.',
        },
      ),
    ),
  },
  { ...closed, description: 'Serve HTTPS on this listener: TLS 1.2 or later, with the certificate and key given.' },
)

export const ListenerSchema = Type.Object(
  {
    host: Type.String({ default: '127.0.0.1', description: 'Interface to bind. Loopback by default.' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, description: 'TCP port (0 picks a free port).' }),
    tls: Type.Optional(ListenerTlsSchema),
    h2c: Type.Boolean({
      default: false,
      description:
        'Plain listeners only: also speak HTTP/2 by prior knowledge (h2c), for a TLS-terminating proxy in front that forwards gRPC that way. HTTP/1.1 is served on the same port: a connection that starts with the HTTP/2 connection preface is HTTP/2, any other is HTTP/1.1. A TLS listener offers HTTP/2 with tls.http2. Changing it needs a restart.',
    }),
  },
  closed,
)

export const ServerSchema = Type.Object(
  {
    headersTimeoutMs: Ms(10_000, 'Time a client has to send all request headers.'),
    requestTimeoutMs: Ms(30_000, 'Time a client has to send the whole request.'),
    keepAliveTimeoutMs: Ms(5_000, 'Idle keep-alive connections are closed after this.'),
    maxConnections: Type.Integer({ minimum: 1, default: 10_000, description: 'Connections per listener.' }),
    maxHeaderBytes: Type.Integer({ minimum: 1024, maximum: 1_048_576, default: 16_384, description: 'Largest request head (request line + headers); larger gets 431.' }),
    maxRequestsPerSocket: Type.Integer({
      minimum: 0,
      default: 0,
      description: "Requests one client connection may carry: the last one's response says Connection: close and the connection ends with it; requests pipelined behind it are not answered. 0 = unlimited.",
    }),
    http2MaxConcurrentStreams: Type.Integer({
      minimum: 1,
      maximum: 1000,
      default: 100,
      description: 'On an HTTP/2 listener (tls.http2), the streams (requests) one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with RST_STREAM.',
    }),
    drainTimeoutMs: Ms(10_000, 'On SIGTERM, in-flight requests get this long to finish.'),
    websocketIdleTimeoutMs: Ms(300_000, 'A WebSocket tunnel with no bytes in either direction for this long is closed.'),
    maxBodyBytes: Type.Integer({
      minimum: 0,
      default: 10_485_760,
      description: 'Largest request body forwarded (413 past it; a chunked body is cut when it passes the limit). 0 = no limit.',
    }),
    trustedProxies: Type.Array(Type.String(), {
      default: [],
      description: 'Addresses or CIDRs of proxies in front of the gateway whose X-Forwarded-For is believed.',
    }),
    realm: Type.String({ default: 'portcullis', description: 'realm of WWW-Authenticate challenges.' }),
    healthPath: Type.String({ default: '/healthz', pattern: PATTERNS.path.pattern, description: 'Liveness endpoint answered by the gateway itself (200, or 503 while draining).' }),
    readyPath: Type.String({ default: '/readyz', pattern: PATTERNS.path.pattern, description: 'Readiness endpoint: 200 once every issuer has keys.' }),
  },
  closed,
)

export const IssuerSchema = Type.Object(
  {
    id: Type.String({ pattern: PATTERNS.id.pattern }),
    discoveryUrl: Type.Optional(Type.String({ format: 'uri', pattern: PATTERNS.fetchUrl.pattern, description: 'OpenID Connect discovery document URL.' })),
    issuer: Type.Optional(Type.String({ description: 'Expected iss. Required unless discoveryUrl is given.' })),
    jwksUri: Type.Optional(Type.String({ format: 'uri', pattern: PATTERNS.fetchUrl.pattern, description: 'JWKS URL. Required unless discoveryUrl is given.' })),
    audiences: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Accepted aud values (one must match).' }),
    algorithms: Type.Array(Algorithm, { minItems: 1, default: ['RS256', 'PS256', 'ES256', 'EdDSA'] }),
    clockSkewSec: Type.Integer({ minimum: 0, maximum: 300, default: 30 }),
    maxTokenLifetimeSec: Type.Integer({ minimum: 1, default: 3600, description: 'exp - iat (or exp - now) may not exceed this.' }),
    requiredTyp: Type.Optional(Type.String({ description: 'Required JOSE typ header, e.g. "at+jwt" (RFC 9068).' })),
    sharedSecret: Type.Optional(Type.String({ description: 'HMAC key for HS* algorithms. Use ${env:NAME}.' })),
    jwksCacheMaxAgeSec: Type.Integer({ minimum: 10, default: 600, description: 'Upper bound on JWKS freshness.' }),
    jwksCacheMinAgeSec: Type.Integer({ minimum: 1, default: 60, description: 'Lower bound: cache headers shorter than this are raised.' }),
    unknownKidRefreshIntervalSec: Type.Integer({ minimum: 0, default: 30, description: 'An unknown kid triggers at most one JWKS refresh per interval.' }),
    fetchTimeoutMs: Ms(5_000, 'Timeout for discovery and JWKS requests.'),
    verifier: Type.Union([Type.Literal('node-crypto'), Type.Literal('jose')], {
      default: 'node-crypto',
      description: 'Signature path: node:crypto with keys imported once (fast) or jose jwtVerify.',
    }),
  },
  closed,
)

export const UpstreamTlsSchema = Type.Object(
  {
    ca: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'PEM certificates of the CAs the upstream\'s certificate must chain to, instead of the system store (a private CA). Usually a ${file:PATH} reference.',
      }),
    ),
    cert: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate the gateway presents to the upstream (mutual TLS), leaf first. Needs key.' })),
    key: Type.Optional(
      Type.String({ minLength: 1, description: 'Its PEM private key, unencrypted; a ${file:PATH} or ${env:NAME} reference (inline: tls-key-inline). Needs cert.' }),
    ),
    serverName: Type.Optional(
      Type.String({
        pattern: '^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$',
        maxLength: 253,
        description: 'The name sent in SNI and checked against the upstream\'s certificate, when it is not the URL\'s host (an upstream reached by address).',
      }),
    ),
    minVersion: Type.Union([Type.Literal('TLSv1.2'), Type.Literal('TLSv1.3')], { default: 'TLSv1.2', description: 'Oldest TLS version accepted from the upstream.' }),
  },
  { ...closed, description: 'TLS towards an https:// upstream: a private CA, a client certificate (mutual TLS), the server name. Re-read on every reload.' },
)

export const UpstreamSchema = Type.Object(
  {
    id: Type.String({ pattern: PATTERNS.id.pattern }),
    url: Type.String({
      format: 'uri',
      // No userinfo, query or fragment: the path (if any) is a prefix for every forwarded request.
      pattern: PATTERNS.upstreamUrl.pattern,
      description: 'Base URL. Its path, if any, is prepended to every forwarded path.',
    }),
    replicas: Type.Optional(
      Type.Array(Type.String({ format: 'uri', pattern: PATTERNS.upstreamUrl.pattern }), {
        minItems: 1,
        description:
          'More base URLs of the same service, with the same scheme and path as url. Requests are spread over url and these (undici BalancedPool: round robin, a target whose connections fail is picked less); a request without a body whose connection is refused or times out is sent once more, to the next target. connections, timeouts and tls apply to each.',
      }),
    ),
    healthCheck: Type.Optional(
      Type.Object(
        {
          path: Type.Optional(
            Type.String({ pattern: PATTERNS.path.pattern, description: 'Path probed with GET on each target (from the target\'s origin, not under url\'s path); a 2xx answer is healthy. Give path or grpcService.' }),
          ),
          grpcService: Type.Optional(
            Type.String({
              maxLength: 256,
              pattern: '^[A-Za-z0-9_.]*$',
              description:
                'Probe with the gRPC health protocol instead (grpc.health.v1.Health/Check) for this service name, "" for the server as a whole: healthy when it answers SERVING. Needs http2: true. Give path or grpcService.',
            }),
          ),
          intervalMs: Ms(5_000, 'Time between two probes of a target.'),
          timeoutMs: Ms(2_000, 'A probe not answered within this long failed.'),
          unhealthyAfter: Type.Integer({ minimum: 1, default: 2, description: 'Failed probes in a row after which a target takes no more requests.' }),
          healthyAfter: Type.Integer({ minimum: 1, default: 2, description: 'Good probes in a row after which an unhealthy target takes requests again.' }),
        },
        {
          ...closed,
          description:
            'Active health checks of url and replicas: an unhealthy target is taken out of the rotation until it answers again. When every target is unhealthy, all take requests (a probe can be wrong; refusing everything would be sure to be).',
        },
      ),
    ),
    connectTimeoutMs: Ms(2_000, 'TCP/TLS connect timeout.'),
    headersTimeoutMs: Ms(15_000, 'Time to the first byte of the response headers.'),
    bodyTimeoutMs: Ms(30_000, 'Maximum idle time between response body chunks.'),
    connections: Type.Integer({ minimum: 1, default: 64, description: 'Keep-alive pool size.' }),
    http2: Type.Boolean({
      default: false,
      description:
        'Reach this upstream over HTTP/2: for https://, offered in ALPN (an upstream that does not pick h2 is reached over HTTP/1.1); for http://, by prior knowledge (h2c; the upstream must speak it). Needed for gRPC, whose answers end in trailers (relayed to HTTP/2 clients). Not for WebSocket routes.',
    }),
    keepAliveTimeoutMs: Ms(4_000, 'Idle pooled connections are closed after this.'),
    audience: UpstreamAudienceField,
    tls: Type.Optional(UpstreamTlsSchema),
  },
  closed,
)

export const ScopesSchema = Type.Object(
  {
    allOf: Type.Array(Type.String({ minLength: 1, pattern: PATTERNS.scope.pattern }), { default: [], description: 'The token must carry every one of these scopes.' }),
    anyOf: Type.Array(Type.String({ minLength: 1, pattern: PATTERNS.scope.pattern }), { default: [], description: 'The token must carry at least one of these scopes.' }),
  },
  { ...closed, description: 'Scopes checked after authentication (only on auth: required routes).' },
)

/** One name a client certificate must carry to be admitted by an `auth: certificate` route. */
export const ClientCertificateMatchSchema = Type.Union(
  [
    Type.Object(
      { uri: Type.String({ minLength: 1, maxLength: 2048, pattern: '^[A-Za-z][A-Za-z0-9+.-]*:[\\x21-\\x7e]+$', description: 'A URI subjectAltName, compared exactly (a SPIFFE ID, for example spiffe://example.org/ns/prod/sa/billing).' }) },
      closed,
    ),
    Type.Object(
      {
        dns: Type.String({
          pattern: '^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$',
          maxLength: 253,
          description: 'A DNS subjectAltName, compared without regard to case. A wildcard name in a certificate (*.example.org) matches no entry.',
        }),
      },
      closed,
    ),
    Type.Object(
      { commonName: Type.String({ minLength: 1, maxLength: 64, description: 'The subject\'s common name (CN), compared exactly; only when the subject has exactly one. Prefer a subjectAltName.' }) },
      closed,
    ),
  ],
  { description: 'Exactly one of uri, dns, commonName.' },
)

export const RouteCorsSchema = Type.Object(
  {
    allowOrigins: Type.Array(Type.String({ minLength: 1 }), {
      minItems: 1,
      description: 'Origins whose pages may call the route, each as a browser sends it ("https://app.example.com", a port only when not the default), or "*" for any (not with allowCredentials).',
    }),
    allowHeaders: Type.Array(Type.String({ pattern: PATTERNS.headerName.pattern }), {
      default: ['authorization', 'content-type'],
      description: 'Request headers a page may send beyond the CORS-safelisted ones.',
    }),
    exposeHeaders: Type.Array(Type.String({ pattern: PATTERNS.headerName.pattern }), {
      default: ['x-request-id', 'ratelimit', 'ratelimit-policy', 'retry-after'],
      description: 'Response headers a page may read beyond the CORS-safelisted ones.',
    }),
    allowCredentials: Type.Boolean({ default: false, description: 'Let pages send cookies or TLS client certificates and read the answer (Access-Control-Allow-Credentials).' }),
    maxAgeSec: Type.Integer({ minimum: 0, maximum: 86_400, default: 600, description: 'How long a browser may keep a preflight answer.' }),
  },
  closed,
)
export type RouteCorsConfig = Static<typeof RouteCorsSchema>

export const RouteSchema = Type.Object(
  {
    id: Type.Optional(Type.String({ pattern: PATTERNS.routeId.pattern, description: 'Name used in logs, events and acknowledgements (default: route-<index>).' })),
    path: Type.String({
      pattern: PATTERNS.path.pattern,
      description: 'Path pattern: literal segments, ":name" or "*" for one segment, a trailing "/**" for any rest.',
    }),
    hosts: Type.Optional(
      Type.Array(Type.String({ pattern: PATTERNS.hostName.pattern, maxLength: 255 }), {
        minItems: 1,
        description:
          'Host names whose requests this route serves (Host, or HTTP/2 :authority; port, letter case and a trailing dot ignored). "*.example.com" covers every name under example.com, not example.com itself. A request is matched only against the routes of its exact name, else of the longest wildcard covering it, else the routes without hosts: a host that routes name never falls back to the others. Default: the route serves every host no route names.',
      }),
    ),
    methods: Type.Array(HttpMethod, { minItems: 1, default: ['GET', 'HEAD'], description: 'Methods this route accepts; GET implies HEAD.' }),
    upstream: Type.String({ description: 'id of an upstream.' }),
    auth: Type.Union([Type.Literal('required'), Type.Literal('public'), Type.Literal('certificate')], {
      description:
        'Every route states its decision: "required" (a valid token), "certificate" (a client certificate the listener verified against its clientCa, naming one of `certificates`) or "public".',
    }),
    certificates: Type.Optional(
      Type.Array(ClientCertificateMatchSchema, {
        minItems: 1,
        description: 'On an auth: certificate route (and only there), the client certificates admitted: one of these names must be in the certificate.',
      }),
    ),
    issuers: Type.Optional(Type.Array(Type.String(), { minItems: 1, description: 'Accepted issuer ids (default: all).' })),
    scopes: Type.Optional(ScopesSchema),
    stripPrefix: Type.Optional(Type.String({ pattern: PATTERNS.path.pattern, description: 'Prefix removed from the path before forwarding.' })),
    limits: RouteLimitsField,
    upstreamToken: UpstreamTokenField,
    websocket: Type.Optional(Type.Boolean({
      description:
        'Let WebSocket handshakes (RFC 6455; on an HTTP/2 listener also extended CONNECT, RFC 8441) on this route through, after the route\'s authentication, scopes and limits: the upstream\'s 101 opens a tunnel, closed when the credential expires or after server.websocketIdleTimeoutMs without traffic. Needs GET among the methods. Off (the default): a handshake gets 400 ERR_ROUTE_WEBSOCKET_NOT_ALLOWED.',
    })),
    grpcWeb: Type.Optional(Type.Boolean({
      description:
        'Translate gRPC-Web calls (Content-Type application/grpc-web or application/grpc-web-text, from browsers) into gRPC towards the upstream, and its answers back, the call status in the body\'s last frame. Needs an upstream with http2: true and POST among the methods. Calls in plain gRPC pass as they are. Off (the default): a gRPC-Web call reaches the upstream untranslated.',
    })),
    cors: Type.Optional({
      ...RouteCorsSchema,
      description:
        "CORS for browser pages on other origins: the gateway answers the route's preflights itself (before authentication) and puts the CORS fields on every answer of the route, refusals included; the upstream's own Access-Control-* fields are dropped.",
    }),
    upstreamTimeouts: Type.Optional(
      Type.Object(
        {
          headersMs: Type.Optional(Type.Integer({ minimum: 1, description: "In place of the upstream's headersTimeoutMs on this route." })),
          bodyMs: Type.Optional(Type.Integer({ minimum: 1, description: "In place of the upstream's bodyTimeoutMs on this route." })),
        },
        { ...closed, description: "This route's own upstream timeouts, for an endpoint slower (a report) or faster than the rest of its upstream." },
      ),
    ),
    http2RequestTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 86_400_000,
        description:
          'On an HTTP/2 listener, the time a stream of this route has to send its whole request, in place of server.requestTimeoutMs: for gRPC client-streaming and bidirectional calls that last longer. HTTP/1.1 requests keep server.requestTimeoutMs (node bounds them per connection, before any route is known).',
      }),
    ),
    websocketTokenProtocol: Type.Optional(
      Type.Boolean({
        description:
          'On a websocket route with auth: required, also accept the bearer token as a Sec-WebSocket-Protocol element "base64url.bearer.authorization.k8s.io.<base64url token>" (the Kubernetes convention; a browser can set no Authorization header on a handshake). The element never reaches the upstream. Off (the default): a handshake that uses it gets 400 ERR_AUTHN_MALFORMED.',
      }),
    ),
  },
  closed,
)

export const IdentitySchema = Type.Object(
  {
    stripHeaders: Type.Array(Type.String({ pattern: "^[!#$%&'+.^_`|~0-9A-Za-z-]+\\*?$", description: 'A header name (RFC 9110 §5.1 token), or a prefix of one followed by *.' }), {
      default: ['x-user*', 'x-auth*', 'x-forwarded-user', 'x-scopes', 'x-client-id', 'x-subject', 'x-remote-*', 'remote-*', 'x-portcullis*', 'x-webauth-*', 'x-authentik-*', 'x-pomerium-*', 'x-goog-authenticated-user-*', 'x-goog-iap-jwt-assertion', 'x-amzn-oidc-*', 'cf-access-*', 'x-consumer-*', 'x-credential-identifier', 'x-anonymous-consumer', 'x-ms-client-principal*', 'x-jwt-*', 'x-access-token', 'x-id-token', 'x-ssl-client-*', 'ssl-client-*', 'x-client-cert*', 'x-arr-clientcert', 'x-amzn-mtls-*'],
      description: 'Inbound headers removed before forwarding. A trailing * matches a prefix. Headers the gateway sets are always stripped too, and so are RFC 9440 Client-Cert and Client-Cert-Chain. The default covers the identity headers of common auth proxies and gateways (oauth2-proxy, Authelia, Authentik, Pomerium, Grafana auth proxy, Google IAP, AWS ALB, Cloudflare Access, Kong, Azure App Service), which services behind them often trust, and the client-certificate headers TLS-terminating proxies set (nginx and Apache conventions, Azure App Service, AWS ALB).',
    }),
    headers: Type.Object(
      {
        subject: Type.String({ pattern: PATTERNS.headerName.pattern, default: 'x-auth-subject' }),
        clientId: Type.String({ pattern: PATTERNS.headerName.pattern, default: 'x-auth-client-id' }),
        scopes: Type.String({ pattern: PATTERNS.headerName.pattern, default: 'x-auth-scopes' }),
        issuer: Type.String({ pattern: PATTERNS.headerName.pattern, default: 'x-auth-issuer' }),
        clientCertificate: Type.String({
          pattern: PATTERNS.headerName.pattern,
          default: 'client-cert',
          description: 'Where a verified client certificate goes (RFC 9440 Client-Cert: the DER certificate as a structured-field byte sequence).',
        }),
        clientCertificateChain: Type.String({
          pattern: PATTERNS.headerName.pattern,
          default: 'client-cert-chain',
          description: 'Where the intermediate certificates of a verified client certificate go, nearest first, without the trust anchor (RFC 9440 Client-Cert-Chain). Not sent when the listener\'s CA issued the certificate directly.',
        }),
      },
      { ...closed, default: {} },
    ),
    forwardAuthorization: Type.Boolean({ default: true, description: 'Forward the caller token to the upstream.' }),
    forwardClientCertificate: Type.Boolean({
      default: true,
      description: 'On a TLS listener, send the client certificate to the upstream when it chains to the listener\'s clientCa (never an unverified one).',
    }),
  },
  { ...closed, default: {} },
)

export const LoggingSchema = Type.Object(
  {
    level: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace'].map((l) => Type.Literal(l)), { default: 'info', description: 'Level of the operational log (stdout).' }),
    events: Type.String({ default: 'stdout', description: '"stdout", "stderr" or a file path for security events.' }),
    access: Type.Union([Type.Literal(false), Type.String()], {
      default: 'stdout',
      description: '"stdout", "stderr", a file path, or false to turn the access log off.',
    }),
  },
  { ...closed, default: {} },
)

export const AcknowledgementSchema = Type.Object(
  {
    rule: Type.String({ description: 'Lint rule id, e.g. "issuer-no-audience".' }),
    target: Type.Optional(Type.String({ description: 'Issuer, upstream or route id, or "host:port" of a listener, the acknowledgement applies to (default: every finding of the rule).' })),
    reason: Type.String({ minLength: 1, description: 'Why this is accepted. Required.' }),
  },
  closed,
)

export const ConfigSchema = Type.Object(
  {
    $schema: Type.Optional(Type.String({ description: 'JSON Schema of this file, for editors; ignored by the gateway.' })),
    version: Type.Literal(1, { description: 'Config format version.' }),
    listeners: Type.Array(ListenerSchema, { minItems: 1, description: 'Addresses the gateway listens on: plain HTTP, or HTTPS with a tls section.' }),
    server: Type.Object(ServerSchema.properties, { ...closed, default: {}, description: 'Client-side limits, proxies and health endpoints.' }),
    issuers: Type.Array(IssuerSchema, { default: [], description: 'Token issuers whose access tokens are accepted.' }),
    upstreams: Type.Array(UpstreamSchema, { minItems: 1, description: 'Services requests are forwarded to.' }),
    routes: Type.Array(RouteSchema, { minItems: 1, description: 'Path patterns, each with its upstream and access decision. The first route of a given shape and method wins.' }),
    identity: IdentitySchema,
    responses: Type.Object(
      {
        stripHeaders: Type.Array(Type.String({ pattern: PATTERNS.headerName.pattern }), {
          default: ['server', 'x-powered-by', 'x-aspnet-version', 'x-aspnetmvc-version', 'x-runtime', 'x-generator'],
          description:
            "Upstream response headers never relayed to clients: by default those that name the server software and its version, which tell an attacker which exploits to try. [] relays them all.",
        }),
      },
      { ...closed, default: {}, description: 'What of the upstreams\' answers the gateway keeps from clients.' },
    ),
    logging: LoggingSchema,
    limits: LimitsSchema,
    internalTokens: Type.Optional(InternalTokensSchema),
    metrics: Type.Object(
      {
        enabled: Type.Boolean({ default: false, description: 'Serve Prometheus metrics on their own listener.' }),
        host: Type.String({ default: '127.0.0.1', description: 'Interface of the metrics listener (loopback by default).' }),
        port: Type.Integer({ minimum: 0, maximum: 65535, default: 9464 }),
        path: Type.String({ default: '/metrics', pattern: PATTERNS.path.pattern }),
      },
      { ...closed, default: {}, description: 'Prometheus metrics (prom-client), on a listener of their own.' },
    ),
    security: Type.Object(
      { acknowledge: Type.Array(AcknowledgementSchema, { default: [], description: 'Security lint findings accepted on purpose; they are then reported as warnings.' }) },
      { ...closed, default: {}, description: 'Security lint settings.' },
    ),
  },
  { ...closed, $id: 'https://portcullis.dev/schema/config.json', title: 'Portcullis gateway configuration' },
)

export type Config = Static<typeof ConfigSchema>
export type ListenerConfig = Static<typeof ListenerSchema>
export type ListenerTlsConfig = Static<typeof ListenerTlsSchema>
export type UpstreamTlsConfig = Static<typeof UpstreamTlsSchema>
export type ServerConfig = Config['server']
export type IssuerConfig = Static<typeof IssuerSchema>
export type UpstreamConfig = Static<typeof UpstreamSchema>
export type RouteConfig = Static<typeof RouteSchema>
export type IdentityConfig = Static<typeof IdentitySchema>
export type LoggingConfig = Static<typeof LoggingSchema>

/** The schema as plain JSON Schema (draft 2020-12 compatible), for editors and `portcullis schema`. */
export function jsonSchema(): Record<string, unknown> {
  return JSON.parse(JSON.stringify(ConfigSchema as TSchema)) as Record<string, unknown>
}
