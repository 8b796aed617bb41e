import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Socket } from 'node:net'
import { GatewayIncomingMessage, isWebSocketHandshake, takeProtocolTokens, TOKEN_PROTOCOL_PREFIX, usedProtocolToken } from './websocket.js'

function request(method: string, headers: Record<string, string>, rawHeaders: string[] = []): GatewayIncomingMessage {
  const req = new GatewayIncomingMessage(new Socket())
  req.rawHeaders = rawHeaders
  req.httpVersionMajor = 1
  req.httpVersionMinor = 1
  req.method = method
  req.headers = headers
  return req
}

test('a WebSocket handshake is a bodiless GET listing websocket in Upgrade, in any case and position', () => {
  for (const upgrade of ['websocket', 'WebSocket', 'h2c, websocket', 'websocket ,h2c', 'foo,\twebsocket']) {
    assert.equal(isWebSocketHandshake(request('GET', { upgrade })), true, upgrade)
  }
  for (const upgrade of ['websockets', 'web socket', 'h2c', 'websocket/13x', '', 'xwebsocket']) {
    assert.equal(isWebSocketHandshake(request('GET', { upgrade })), false, upgrade)
  }
  assert.equal(isWebSocketHandshake(request('POST', { upgrade: 'websocket' })), false, 'not a GET')
  const http10 = request('GET', { upgrade: 'websocket' })
  http10.httpVersionMinor = 0
  assert.equal(isWebSocketHandshake(http10), false, 'HTTP/1.0 has no upgrade (RFC 6455 asks for 1.1)')
  assert.equal(isWebSocketHandshake(request('GET', { upgrade: 'websocket', 'content-length': '3' })), false, 'a body')
  assert.equal(isWebSocketHandshake(request('GET', { upgrade: 'websocket', 'transfer-encoding': 'chunked' })), false, 'a chunked body')
})

test('the upgrade flag node reads is the parser\'s for a WebSocket handshake only', () => {
  const ws = request('GET', { upgrade: 'websocket' })
  assert.equal(ws.upgrade, false, 'not asked yet (the constructor sets null)')
  ws.upgrade = true
  assert.equal(ws.upgrade, true)
  assert.equal(ws.upgradeDeclined, false)
  const h2c = request('GET', { upgrade: 'h2c' })
  h2c.upgrade = true
  assert.equal(h2c.upgrade, false, 'any other upgrade stays an ordinary request')
  assert.equal(h2c.upgradeDeclined, true, 'and its connection ends with its answer')
  const plain = request('GET', { upgrade: 'websocket' })
  plain.upgrade = false
  assert.equal(plain.upgrade, false, 'without Connection: upgrade the parser never asks')
  assert.equal(plain.upgradeDeclined, false)
})

test('a token element of Sec-WebSocket-Protocol becomes an Authorization field; the rest of the list goes on', () => {
  const element = TOKEN_PROTOCOL_PREFIX + Buffer.from('eyJhbGciOiJSUzI1NiJ9.e30.c2ln').toString('base64url')
  const req = request('GET', { upgrade: 'websocket', 'sec-websocket-protocol': `chat.v1, ${element} ,chat.v2` })
  takeProtocolTokens(req)
  assert.equal(req.headers['sec-websocket-protocol'], 'chat.v1, chat.v2')
  assert.equal(req.headers.authorization, 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln')
  assert.deepEqual(req.rawHeaders, ['Authorization', 'Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln'])
  assert.equal(usedProtocolToken(req), true)

  // Only the element: no subprotocol is left to send.
  const alone = request('GET', { 'sec-websocket-protocol': element })
  takeProtocolTokens(alone)
  assert.equal(alone.headers['sec-websocket-protocol'], undefined)

  // A header the client sent stays the one read, and the element is a second credential.
  const both = request('GET', { authorization: 'Bearer other', 'sec-websocket-protocol': element }, ['Authorization', 'Bearer other'])
  takeProtocolTokens(both)
  assert.equal(both.headers.authorization, 'Bearer other')
  assert.equal(both.rawHeaders.filter((h) => h === 'Authorization').length, 2)

  // Not base64url, or not a bearer token once decoded: an empty credential, refused by authn.
  for (const bad of [TOKEN_PROTOCOL_PREFIX + 'a*b', TOKEN_PROTOCOL_PREFIX, TOKEN_PROTOCOL_PREFIX + Buffer.from('a b').toString('base64url')]) {
    const r = request('GET', { 'sec-websocket-protocol': bad })
    takeProtocolTokens(r)
    assert.equal(r.headers.authorization, 'Bearer ', bad)
  }

  const none = request('GET', { 'sec-websocket-protocol': 'chat.v1' })
  takeProtocolTokens(none)
  assert.equal(none.headers['sec-websocket-protocol'], 'chat.v1')
  assert.equal(none.headers.authorization, undefined)
  assert.equal(usedProtocolToken(none), false)
})
