import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { RouteConfig } from '../../config/schema.js'
import { compileRoute, Router, type RouteMatch } from './router.js'

function routerOf(...routes: Array<Partial<RouteConfig> & { path: string }>): Router {
  return new Router(
    routes.map((r, i) => compileRoute({ methods: ['GET'], upstream: 'u', auth: 'required', id: r.id ?? r.path, ...r } as RouteConfig, i)),
  )
}

/** The id of the matched route, "405:<allow>" or "404". */
function hit(m: RouteMatch): string {
  if (m.kind === 'match') return m.route.id
  if (m.kind === 'method') return `405:${m.allow}`
  return '404'
}

test('a literal pattern matches only its own path, case-sensitively', () => {
  const r = routerOf({ path: '/admin' })
  assert.equal(hit(r.match('/admin', 'GET')), '/admin')
  assert.equal(hit(r.match('/ADMIN', 'GET')), '404')
  assert.equal(hit(r.match('/admin/', 'GET')), '404')
  assert.equal(hit(r.match('/adminx', 'GET')), '404')
  assert.equal(hit(r.match('/admin/x', 'GET')), '404')
})

test('a trailing /** matches the prefix itself, with a trailing slash, and anything below it, but not a longer segment', () => {
  const r = routerOf({ path: '/admin/**' })
  for (const p of ['/admin', '/admin/', '/admin/x', '/admin/x/y/z', '/admin/x/']) assert.equal(hit(r.match(p, 'GET')), '/admin/**', p)
  for (const p of ['/administrator', '/admin-x', '/', '/x/admin']) assert.equal(hit(r.match(p, 'GET')), '404', p)
})

test('/** at the root matches every path, "/" included', () => {
  const r = routerOf({ path: '/**' })
  for (const p of ['/', '/a', '/a/b/', '/x/y/z']) assert.equal(hit(r.match(p, 'GET')), '/**', p)
})

test('"/" matches only the root', () => {
  const r = routerOf({ path: '/' })
  assert.equal(hit(r.match('/', 'GET')), '/')
  assert.equal(hit(r.match('/a', 'GET')), '404')
})

test('a parameter or "*" matches exactly one non-empty segment', () => {
  const r = routerOf({ path: '/orders/:id' }, { path: '/files/*/meta' })
  assert.equal(hit(r.match('/orders/1', 'GET')), '/orders/:id')
  assert.equal(hit(r.match('/orders/', 'GET')), '404')
  assert.equal(hit(r.match('/orders', 'GET')), '404')
  assert.equal(hit(r.match('/orders/1/2', 'GET')), '404')
  assert.equal(hit(r.match('/files/a/meta', 'GET')), '/files/*/meta')
  assert.equal(hit(r.match('/files//meta', 'GET')), '404')
})

test('a literal segment wins over a parameter, which wins over a rest', () => {
  const r = routerOf({ path: '/a/**' }, { path: '/a/:id' }, { path: '/a/new' })
  assert.equal(hit(r.match('/a/new', 'GET')), '/a/new')
  assert.equal(hit(r.match('/a/7', 'GET')), '/a/:id')
  assert.equal(hit(r.match('/a/7/x', 'GET')), '/a/**')
  assert.equal(hit(r.match('/a', 'GET')), '/a/**')
})

test('matching backtracks from a literal branch that dead-ends to a parameter branch', () => {
  const r = routerOf({ path: '/a/b/c' }, { path: '/a/:x/d' })
  assert.equal(hit(r.match('/a/b/d', 'GET')), '/a/:x/d')
  assert.equal(hit(r.match('/a/b/c', 'GET')), '/a/b/c')
})

test('a deeper route that dead-ends falls back to the nearest enclosing rest', () => {
  const r = routerOf({ path: '/**', id: 'catch-all' }, { path: '/admin/users' })
  assert.equal(hit(r.match('/admin/users', 'GET')), '/admin/users')
  assert.equal(hit(r.match('/admin/users/1', 'GET')), 'catch-all')
})

test('a method not allowed on the most specific route is 405, never a fall-through to a weaker route', () => {
  const r = routerOf({ path: '/admin/**', methods: ['POST'] }, { path: '/**', methods: ['GET', 'POST'], auth: 'public' })
  assert.equal(hit(r.match('/admin/x', 'GET')), '405:POST')
  assert.equal(hit(r.match('/admin/x', 'POST')), '/admin/**')
})

test('routes that share a pattern are told apart by method, and Allow lists them all', () => {
  const r = routerOf({ path: '/orders', methods: ['GET'], id: 'read' }, { path: '/orders', methods: ['POST'], id: 'write' })
  assert.equal(hit(r.match('/orders', 'GET')), 'read')
  assert.equal(hit(r.match('/orders', 'HEAD')), 'read')
  assert.equal(hit(r.match('/orders', 'POST')), 'write')
  const m = r.match('/orders', 'DELETE')
  assert.equal(m.kind, 'method')
  assert.deepEqual(new Set((m as { allow: string }).allow.split(', ')), new Set(['GET', 'HEAD', 'POST']))
})

test('GET implies HEAD but HEAD alone does not imply GET', () => {
  const r = routerOf({ path: '/g', methods: ['GET'] }, { path: '/h', methods: ['HEAD'] })
  assert.equal(hit(r.match('/g', 'HEAD')), '/g')
  assert.equal(hit(r.match('/h', 'GET')), '405:HEAD')
})

test('a trailing slash in a pattern is its own empty segment', () => {
  const r = routerOf({ path: '/a/' })
  assert.equal(hit(r.match('/a/', 'GET')), '/a/')
  assert.equal(hit(r.match('/a', 'GET')), '404')
})

test('segment names that are Object.prototype keys are ordinary literals', () => {
  const r = routerOf({ path: '/a' })
  for (const p of ['/__proto__', '/constructor', '/hasOwnProperty', '/toString']) assert.equal(hit(r.match(p, 'GET')), '404', p)
})

test('a route without an id gets one from its index', () => {
  const c = compileRoute({ path: '/x', methods: ['GET'], upstream: 'u', auth: 'public' }, 3)
  assert.equal(c.id, 'route-3')
  assert.equal(c.requiredScopeText, '')
})

test('the required scope text lists allOf then anyOf', () => {
  const c = compileRoute({ path: '/x', methods: ['GET'], upstream: 'u', auth: 'required', scopes: { allOf: ['a', 'b'], anyOf: ['c'] } }, 0)
  assert.equal(c.requiredScopeText, 'a b c')
  assert.ok(Object.isFrozen(c))
})

test('a route with hosts serves only requests for those hosts; the others get the routes without hosts', () => {
  const r = routerOf(
    { id: 'admin-root', path: '/**', hosts: ['admin.example.com'] },
    { id: 'api-orders', path: '/orders/**', hosts: ['api.example.com', '*.api.example.com'] },
    { id: 'default-orders', path: '/orders/**' },
    { id: 'default-health', path: '/status' },
  )
  assert.equal(hit(r.match('/orders/1', 'GET', 'api.example.com')), 'api-orders')
  assert.equal(hit(r.match('/orders/1', 'GET', 'API.example.com:8443')), 'api-orders')
  assert.equal(hit(r.match('/orders/1', 'GET', 'eu.api.example.com')), 'api-orders')
  assert.equal(hit(r.match('/orders/1', 'GET', 'www.example.com')), 'default-orders')
  assert.equal(hit(r.match('/orders/1', 'GET', undefined)), 'default-orders')
  assert.equal(hit(r.match('/orders/1', 'GET', 'admin.example.com')), 'admin-root')
  // A host with routes of its own never falls back to the routes without hosts.
  assert.equal(hit(r.match('/status', 'GET', 'api.example.com')), '404')
  assert.equal(hit(r.match('/status', 'GET', 'other.example.com')), 'default-health')
  // Methods are judged within the host's group.
  assert.equal(hit(r.match('/orders/1', 'POST', 'api.example.com')), '405:GET, HEAD')
  // A Host a service could read as another name gets no route at all.
  assert.equal(hit(r.match('/orders/1', 'GET', 'api%2eexample.com')), '404')
  assert.equal(hit(r.match('/status', 'GET', 'api%2eexample.com')), '404')
})

test('without any route naming a host, the Host is not read', () => {
  const r = routerOf({ id: 'all', path: '/x' })
  assert.equal(hit(r.match('/x', 'GET', 'anything.example')), 'all')
  assert.equal(hit(r.match('/x', 'GET', 'not a host')), 'all')
  assert.equal(hit(r.match('/x', 'GET')), 'all')
})
