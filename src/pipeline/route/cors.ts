import type { IncomingHttpHeaders } from 'node:http'
import type { RouteCorsConfig } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'

/**
 * CORS (the Fetch standard's CORS protocol) for a route with a `cors` section, made once at config
 * load. The gateway answers a route's preflights itself, before authentication (a preflight
 * carries no credentials, by the standard), and puts the CORS fields on every answer of the route:
 * the upstream's, and the gateway's own refusals, so that a browser application can read a 401's
 * problem+json. Fields the upstream sets under Access-Control-* are dropped on such a route: two
 * sources of CORS fields would contradict each other. Written by hand: the CORS libraries of the
 * field (cors, @fastify/cors) are middleware for one framework's request objects.
 */
export interface CompiledCors {
  /** Whether a request's Origin may read the route's answers (exact match, or `*`). */
  allows(origin: string): boolean
  /** The CORS fields of an answer to an allowed origin, as name/value pairs. */
  responseFields(origin: string): readonly string[]
  /** The fields an answer carries for a request's Origin: responseFields when it is allowed, else none. */
  fieldsFor(origin: string | undefined): readonly string[] | undefined
  /** The fields of a preflight's 204 for an allowed origin, or the refusal it gets. */
  preflight(origin: string, headers: IncomingHttpHeaders): Record<string, string>
}

/** A preflight: OPTIONS with Origin and Access-Control-Request-Method (Fetch §3.2.2). */
export function isPreflight(method: string, headers: IncomingHttpHeaders): boolean {
  return method === 'OPTIONS' && headers.origin !== undefined && headers['access-control-request-method'] !== undefined
}

/**
 * Request headers a page may send without listing them (Fetch's CORS-safelisted request headers,
 * by name; browsers list the rest in Access-Control-Request-Headers).
 */
const SAFELISTED = new Set(['accept', 'accept-language', 'content-language', 'content-type', 'range'])

const refused = (reason: string) => new GatewayError('ERR_ROUTE_CORS_REJECTED', { reason })

export function compileCors(config: RouteCorsConfig, methods: readonly string[]): CompiledCors {
  const any = config.allowOrigins.includes('*')
  const origins = new Set(config.allowOrigins.map((o) => o.toLowerCase()))
  const allowHeaders = new Set(config.allowHeaders.map((h) => h.toLowerCase()))
  const credentials = config.allowCredentials
  const expose = config.exposeHeaders.length > 0 ? config.exposeHeaders.join(', ') : undefined
  const allowMethods = methods.join(', ')
  const allowHeadersText = [...allowHeaders].join(', ')
  const maxAge = String(config.maxAgeSec)

  // With credentials the origin is echoed (a `*` is refused at load with allowCredentials), and
  // answers vary with it; `*` alone is the same for every origin.
  const originField = (origin: string) => (any ? '*' : origin)
  // The fields after the origin's, the same on every answer.
  const fixedFields = [
    'vary',
    'Origin',
    ...(credentials ? ['access-control-allow-credentials', 'true'] : []),
    ...(expose === undefined ? [] : ['access-control-expose-headers', expose]),
  ]
  const allows = (origin: string) => any || origins.has(origin.toLowerCase())
  const responseFields = (origin: string) => ['access-control-allow-origin', originField(origin), ...fixedFields]

  return {
    allows,
    responseFields,
    fieldsFor: (origin) => (origin !== undefined && allows(origin) ? responseFields(origin) : undefined),
    preflight(origin, headers) {
      if (!allows(origin)) throw refused('origin')
      const method = headers['access-control-request-method']!
      if (!methods.includes(method)) throw refused('method')
      const requested = headers['access-control-request-headers']
      if (requested !== undefined) {
        for (const raw of requested.split(',')) {
          const name = raw.trim().toLowerCase()
          if (name !== '' && !allowHeaders.has(name) && !SAFELISTED.has(name)) throw refused('header')
        }
      }
      const fields: Record<string, string> = {
        'access-control-allow-origin': originField(origin),
        'access-control-allow-methods': allowMethods,
        'access-control-max-age': maxAge,
        vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
        'cache-control': 'no-store',
      }
      if (allowHeadersText !== '') fields['access-control-allow-headers'] = allowHeadersText
      if (credentials) fields['access-control-allow-credentials'] = 'true'
      return fields
    },
  }
}

/** Drops an upstream's Access-Control-* fields from a flat name/value list (on a CORS route the gateway's own go out instead). */
export function withoutUpstreamCors(headers: string[]): string[] {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i].length > 15 && headers[i].toLowerCase().startsWith('access-control-')) headers.splice(i, 2)
  }
  return headers
}
