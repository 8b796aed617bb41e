import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Config, RouteConfig } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'
import type { Deps, RequestContext } from '../stage.js'
import { createNormalizeStage } from './index.js'

const deps = { now: () => 0, events: { emit() {}, flush: async () => {} }, logger: undefined } as unknown as Deps

function route(path: string, extra: Partial<RouteConfig> = {}): RouteConfig {
  return { path, methods: ['GET'], upstream: 'u', auth: 'required', ...extra }
}

function stageFor(routes: RouteConfig[]) {
  return createNormalizeStage({ routes } as unknown as Config, deps)
}

function ctxFor(url: string | undefined, method = 'GET'): RequestContext {
  return { req: { url, headers: {} }, method, path: '', query: '' } as unknown as RequestContext
}

function run(stage: ReturnType<typeof stageFor>, url: string | undefined, method = 'GET'): RequestContext {
  const ctx = ctxFor(url, method)
  stage.onRequest(ctx)
  return ctx
}

function refusal(stage: ReturnType<typeof stageFor>, url: string | undefined, method = 'GET'): GatewayError {
  try {
    run(stage, url, method)
  } catch (err) {
    assert.ok(err instanceof GatewayError, `expected a GatewayError, got ${String(err)}`)
    return err
  }
  assert.fail(`expected ${JSON.stringify(url)} to be refused`)
}

const basic = stageFor([route('/public/**', { auth: 'public' }), route('/admin/**'), route('/orders/**')])

test('the stage is named normalize and is synchronous', () => {
  assert.equal(basic.name, 'normalize')
  assert.equal(basic.onRequest(ctxFor('/public/a')), undefined)
})

test('sets the canonical path and the raw query with its "?"', () => {
  const ctx = run(basic, '/public/a/../b?x=%2F..%2F&y=1')
  assert.equal(ctx.path, '/public/b')
  assert.equal(ctx.query, '?x=%2F..%2F&y=1')
})

test('an empty query is the empty string and a bare "?" is kept as sent', () => {
  assert.equal(run(basic, '/public/a').query, '')
  assert.equal(run(basic, '/public/a?').query, '?')
})

test('the query starts at the first "?", so an escaped "?" stays in the path', () => {
  const ctx = run(basic, '/public/a%3Fb?c?d')
  assert.equal(ctx.path, '/public/a%3Fb')
  assert.equal(ctx.query, '?c?d')
})

test('refuses a target that is not origin-form with 400 ERR_NORMALIZE_REJECTED', () => {
  for (const url of ['*', 'http://example.com/admin/x', '', undefined]) {
    const err = refusal(basic, url)
    assert.equal(err.code, 'ERR_NORMALIZE_REJECTED')
    assert.equal(err.status, 400)
    assert.equal(err.reason, 'not_origin_form')
  }
})

test('a refused path leaves ctx.path unset and carries a machine reason and a safe detail', () => {
  const ctx = ctxFor('/admin%2fsecret')
  assert.throws(
    () => basic.onRequest(ctx),
    (err: unknown) => err instanceof GatewayError && err.reason === 'encoded_slash' && typeof err.detail === 'string',
  )
  assert.equal(ctx.path, '')
})

test('refuses control characters and "#" in the query', () => {
  assert.equal(refusal(basic, '/public/a?x=\u0001').reason, 'control_char')
  assert.equal(refusal(basic, '/public/a?x#y').reason, 'fragment')
})

test('a path with uppercase letters is fine when no route would change under case folding', () => {
  assert.equal(run(basic, '/orders/ABC-123').path, '/orders/ABC-123')
  // no route at all: left to the route stage (404), not refused here
  assert.equal(run(basic, '/ADMIN/x').path, '/ADMIN/x')
})

const withCatchAll = stageFor([
  route('/admin/**'),
  route('/billing'),
  route('/Reports/**', { methods: ['POST'] }),
  route('/orders/:orderId'),
  route('/**', { auth: 'public' }),
])

test('refuses a path that a case-insensitive upstream would route to a protected route', () => {
  // exact match: the public catch-all; lowercased: /admin/** → refused
  assert.equal(refusal(withCatchAll, '/ADMIN/x').reason, 'route_ambiguous')
  assert.equal(refusal(withCatchAll, '/Admin').reason, 'route_ambiguous')
  assert.equal(refusal(withCatchAll, '/bILLing').reason, 'route_ambiguous')
})

test('refuses a path that a trailing-slash-insensitive upstream would route to a protected route', () => {
  // "/billing/" matches the catch-all, "/billing" the protected route
  assert.equal(refusal(withCatchAll, '/billing/').reason, 'route_ambiguous')
  assert.equal(refusal(withCatchAll, '/billing//').reason, 'route_ambiguous')
  assert.equal(refusal(withCatchAll, '/billing/.').reason, 'route_ambiguous')
  assert.equal(refusal(withCatchAll, '/BILLING/').reason, 'route_ambiguous')
})

test('refuses a lowercase path when a route pattern with uppercase letters would claim it', () => {
  // "/reports/x" matches the catch-all; an upstream ignoring case would serve /Reports/** (POST-only here)
  assert.equal(refusal(withCatchAll, '/reports/x').reason, 'route_ambiguous')
  // POST matches no route exactly (the catch-all is GET-only): left to the route stage (405)
  assert.equal(run(withCatchAll, '/reports/x', 'POST').path, '/reports/x')
})

test('accepts paths whose route does not change under case folding or trailing slash removal', () => {
  assert.equal(run(withCatchAll, '/admin/x/').path, '/admin/x/')
  assert.equal(run(withCatchAll, '/Admin-Guide').path, '/Admin-Guide')
  assert.equal(run(withCatchAll, '/orders/ABC').path, '/orders/ABC')
  assert.equal(run(withCatchAll, '/docs/Readme.MD/').path, '/docs/Readme.MD/')
  assert.equal(run(withCatchAll, '/Reports/x', 'POST').path, '/Reports/x')
  assert.equal(run(withCatchAll, '/').path, '/')
})

test('parameter names with uppercase letters do not count as uppercase patterns', () => {
  const stage = stageFor([route('/orders/:orderId'), route('/**', { auth: 'public' })])
  assert.equal(run(stage, '/orders/1').path, '/orders/1')
  assert.equal(run(stage, '/orderid').path, '/orderid')
})

test('case and trailing-slash variants are judged within the host group the request selects', () => {
  const stage = stageFor([
    route('/admin/**', { hosts: ['api.example.com'] }),
    route('/**', { hosts: ['api.example.com'], auth: 'public' }),
    route('/**', { auth: 'public' }),
  ])
  const withHost = (url: string, host: string): RequestContext => {
    const ctx = { req: { url, headers: { host } }, method: 'GET', path: '', query: '' } as unknown as RequestContext
    stage.onRequest(ctx)
    return ctx
  }
  // On api.example.com, /Admin/x matches the public catch-all and, lowercased, the protected route.
  assert.throws(() => withHost('/Admin/x', 'api.example.com'), (e: GatewayError) => e.reason === 'route_ambiguous')
  assert.throws(() => withHost('/Admin/x', 'API.example.com:443'), (e: GatewayError) => e.reason === 'route_ambiguous')
  // Elsewhere only the catch-all exists: no variant changes the route.
  assert.equal(withHost('/Admin/x', 'www.example.com').path, '/Admin/x')
})
