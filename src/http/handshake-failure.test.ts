import { test } from 'node:test'
import assert from 'node:assert/strict'
import { handshakeFailure } from './server.js'

test('a refused TLS handshake is named by its OpenSSL code; a client that went away is not a refusal', () => {
  const of = (code: unknown) => handshakeFailure(Object.assign(new Error('x'), { code }) as NodeJS.ErrnoException)
  assert.equal(of('ERR_SSL_UNSUPPORTED_PROTOCOL'), 'unsupported_protocol')
  assert.equal(of('ERR_SSL_NO_SHARED_CIPHER'), 'no_shared_cipher')
  assert.equal(of('ERR_SSL_HTTP_REQUEST'), 'http_request')
  assert.equal(of('ERR_TLS_HANDSHAKE_TIMEOUT'), 'handshake_timeout')
  assert.equal(of('ECONNRESET'), undefined)
  assert.equal(of('EPIPE'), undefined)
  assert.equal(of(undefined), undefined)
  // Whatever else comes is recorded under a fixed name, never as free text.
  assert.equal(of('ERR SSL "quoted"'), 'handshake_failed')
})
