import { authenticateRequest, problemResponse, scopesOption, type RequestLike } from '../lib/http.js'
import type { Identity, Verifier } from '../types.js'
import { isVerifyError } from '../verify-error.js'

/**
 * What the hook reads of a Fastify request (structural: no dependency on fastify). Add
 * `declare module 'fastify' { interface FastifyRequest { identity: Identity | null } }` to your
 * code to type `request.identity`.
 */
export interface FastifyRequestLike {
  readonly raw: RequestLike
  identity?: Identity | null
  readonly routeOptions?: { readonly config?: unknown }
}

/** What the hook writes to a Fastify reply. */
export interface FastifyReplyLike {
  code(status: number): FastifyReplyLike
  headers(values: Record<string, string>): FastifyReplyLike
  send(payload: Buffer): FastifyReplyLike
}

/** Options of {@link verifyPreHandler} and {@link fastifyVerify}. */
export interface FastifyVerifyOptions {
  /** Scopes every request must hold (all of them); 403 insufficient_scope otherwise. */
  readonly scopes?: readonly string[]
  /** Realm of the challenges; default the verifier's. */
  readonly realm?: string
}

type Hook = (request: FastifyRequestLike, reply: FastifyReplyLike) => Promise<FastifyReplyLike | undefined>

function makeHook(verifier: Verifier, options: FastifyVerifyOptions, perRoute: boolean): Hook {
  const scopes = scopesOption(options.scopes) ?? []
  const realm = options.realm ?? verifier.realm
  // Route config objects → the plugin's scopes plus the route's, checked and merged once per route.
  const merged = new WeakMap<object, readonly string[]>()
  /**
   * Route-level scopes: `config: { scopes: [...] }` in the route options (plugin only). A value
   * that is not an array of scope tokens throws (the request fails with 500): a typo such as
   * `scopes: 'admin'` must not leave the route open to any valid token.
   */
  function scopesFor(request: FastifyRequestLike): readonly string[] {
    const config = request.routeOptions?.config
    if (!perRoute || config === null || typeof config !== 'object') return scopes
    let all = merged.get(config)
    if (all === undefined) {
      const own = scopesOption((config as { scopes?: readonly string[] }).scopes)
      all = own ? [...scopes, ...own] : scopes
      merged.set(config, all)
    }
    return all
  }
  return async function portcullisVerify(request, reply) {
    const required = scopesFor(request)
    try {
      request.identity = await authenticateRequest(verifier, request.raw, required)
      return undefined
    } catch (err) {
      if (!isVerifyError(err)) throw err
      const p = problemResponse(err, realm)
      // Bytes, so fastify writes them as they are under our content-type (a string would get
      // "; charset=utf-8" appended, and the gateway sends plain application/problem+json).
      return reply.code(p.status).headers(p.headers).send(Buffer.from(p.body))
    }
  }
}

/**
 * A Fastify `preHandler` hook (tested with Fastify 5) for one route or one scope: sets
 * `request.identity`, or answers 400/401/403/503 with `application/problem+json` and the RFC 6750
 * `WWW-Authenticate` challenge, and the handler never runs.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify'
 * import { verifyPreHandler } from '@portcullis/verify/fastify'
 *
 * const app = Fastify()
 * app.get('/orders', { preHandler: verifyPreHandler(verifier, { scopes: ['orders:read'] }) }, async (request) => {
 *   return { subject: request.identity.subject }
 * })
 * ```
 */
export function verifyPreHandler(verifier: Verifier, options: FastifyVerifyOptions = {}): Hook {
  return makeHook(verifier, options, false)
}

/** Fastify instance methods the plugin uses. */
export interface FastifyInstanceLike {
  hasRequestDecorator(name: string): boolean
  decorateRequest(name: string, value: unknown): unknown
  addHook(name: 'preHandler', hook: Hook): unknown
}

/** Options of the {@link fastifyVerify} plugin. */
export interface FastifyVerifyPluginOptions extends FastifyVerifyOptions {
  readonly verifier: Verifier
}

/**
 * Fastify plugin: every route of the context it is registered in requires a verified token, plus
 * the plugin's `scopes` and the route's own `config.scopes`. It does not open a new encapsulation
 * context (as fastify-plugin would), so register it inside `app.register(async (api) => …)` to
 * protect only the routes declared there and keep, say, a health check public.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify'
 * import { fastifyVerify } from '@portcullis/verify/fastify'
 *
 * const app = Fastify()
 * app.get('/healthz', async () => 'ok') // public
 * app.register(async (api) => {
 *   await api.register(fastifyVerify, { verifier })
 *   api.get('/orders', { config: { scopes: ['orders:read'] } }, async (request) => request.identity)
 * })
 * ```
 */
export function fastifyVerify(instance: FastifyInstanceLike, options: FastifyVerifyPluginOptions, done: (err?: Error) => void): void {
  if (options?.verifier === undefined || typeof options.verifier.verify !== 'function') {
    return done(new TypeError('@portcullis/verify: fastifyVerify needs { verifier }'))
  }
  try {
    if (!instance.hasRequestDecorator('identity')) instance.decorateRequest('identity', null)
    instance.addHook('preHandler', makeHook(options.verifier, options, true))
  } catch (err) {
    return done(err as Error)
  }
  done()
}

// What fastify-plugin sets, without depending on it: no new encapsulation context, and a name for
// fastify's plugin tree and error messages.
Object.assign(fastifyVerify, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@portcullis/verify',
})
