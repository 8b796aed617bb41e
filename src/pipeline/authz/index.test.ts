import { test } from 'node:test'
import assert from 'node:assert/strict'
import { GatewayError } from '../../errors/gateway-error.js'
import { compileRoute } from '../route/router.js'
import type { RequestContext } from '../stage.js'
import { createAuthzStage, hasRequiredScopes } from './index.js'

test('allOf needs every scope; anyOf needs one when it is not empty', () => {
  const g = new Set(['a', 'b'])
  assert.equal(hasRequiredScopes(g, ['a', 'b'], []), true)
  assert.equal(hasRequiredScopes(g, ['a', 'c'], []), false)
  assert.equal(hasRequiredScopes(g, [], ['c', 'b']), true)
  assert.equal(hasRequiredScopes(g, [], ['c', 'd']), false)
  assert.equal(hasRequiredScopes(g, ['a'], ['c']), false)
  assert.equal(hasRequiredScopes(new Set(), [], []), true)
})

test('scope matching is exact: no prefix, case or substring match', () => {
  assert.equal(hasRequiredScopes(new Set(['orders:read']), ['orders'], []), false)
  assert.equal(hasRequiredScopes(new Set(['Orders:Read']), ['orders:read'], []), false)
  assert.equal(hasRequiredScopes(new Set(['orders:read:all']), ['orders:read'], []), false)
})

function ctxWith(scopes: string[] | undefined, routeScopes: { allOf?: string[]; anyOf?: string[] }) {
  const route = compileRoute(
    { path: '/x', methods: ['GET'], upstream: 'u', auth: 'required', scopes: { allOf: routeScopes.allOf ?? [], anyOf: routeScopes.anyOf ?? [] } },
    0,
  )
  return {
    route,
    identity: scopes === undefined ? undefined : { scopes: new Set(scopes) },
  } as unknown as RequestContext
}

test('denies with ERR_AUTHZ_INSUFFICIENT_SCOPE naming every scope the route requires', () => {
  const stage = createAuthzStage()
  assert.throws(
    () => stage.onRequest(ctxWith(['read'], { allOf: ['read', 'write'], anyOf: ['x', 'y'] })),
    (e: unknown) => e instanceof GatewayError && e.code === 'ERR_AUTHZ_INSUFFICIENT_SCOPE' && e.scope === 'read write x y',
  )
  assert.doesNotThrow(() => stage.onRequest(ctxWith(['read', 'write', 'y'], { allOf: ['read', 'write'], anyOf: ['x', 'y'] })))
})

test('fails closed when a protected route reaches authz with no identity', () => {
  assert.throws(
    () => createAuthzStage().onRequest(ctxWith(undefined, {})),
    (e: unknown) => e instanceof GatewayError && e.code === 'ERR_INTERNAL',
  )
})

test('fails closed when a request reaches authz without a route', () => {
  assert.throws(
    () => createAuthzStage().onRequest({ route: undefined, identity: undefined } as unknown as RequestContext),
    (e: unknown) => e instanceof GatewayError && e.code === 'ERR_INTERNAL' && e.reason === 'authz_without_route',
  )
})
