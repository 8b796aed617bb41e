import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { IncomingMessage } from 'node:http'
import { GatewayError } from '../../errors/gateway-error.js'
import { boundCertificate, checkBinding, clientCertificateThumbprint } from './binding.js'

const reasonOf = (fn: () => unknown): string | undefined => {
  try {
    fn()
    return undefined
  } catch (err) {
    assert.ok(err instanceof GatewayError)
    assert.equal(err.code, 'ERR_AUTHN_INVALID_TOKEN')
    return err.reason
  }
}

test('boundCertificate: no cnf is no binding; x5t#S256 is the binding; any other confirmation is refused', () => {
  assert.equal(boundCertificate({}), undefined)
  assert.equal(boundCertificate({ cnf: { 'x5t#S256': 'abc' } }), 'abc')
  // Other members beside x5t#S256 do not weaken it: the certificate is still required.
  assert.equal(boundCertificate({ cnf: { 'x5t#S256': 'abc', jkt: 'k' } }), 'abc')
  for (const cnf of [{ jkt: 'k' }, { jwk: {} }, { kid: 'k' }, {}, null, 'x', ['x5t#S256'], { 'x5t#S256': '' }, { 'x5t#S256': 5 }]) {
    assert.equal(reasonOf(() => boundCertificate({ cnf })), 'unsupported_confirmation', JSON.stringify(cnf))
  }
})

const request = (raw: Buffer | undefined, counter = { calls: 0 }) =>
  ({
    socket: {
      getPeerCertificate() {
        counter.calls++
        return raw === undefined ? {} : { raw }
      },
    },
  }) as unknown as IncomingMessage

test('the thumbprint is the base64url SHA-256 of the DER, computed once per connection; a plain socket has none', () => {
  const der = Buffer.from('not really DER, but bytes')
  const counter = { calls: 0 }
  const req = request(der, counter)
  const expected = 'FGaQ2GwW0pbXjusUM62pC9up2yp-zkubzWIycBuZzGI'
  assert.equal(clientCertificateThumbprint(req), expected)
  assert.equal(clientCertificateThumbprint(req), expected)
  assert.equal(counter.calls, 1)
  assert.equal(clientCertificateThumbprint({ socket: {} } as unknown as IncomingMessage), undefined)
  assert.equal(clientCertificateThumbprint(request(undefined)), undefined)
  assert.equal(reasonOf(() => checkBinding(expected, req)), undefined)
  assert.equal(reasonOf(() => checkBinding('other', req)), 'certificate_mismatch')
  assert.equal(reasonOf(() => checkBinding(expected, request(undefined))), 'certificate_missing')
})
