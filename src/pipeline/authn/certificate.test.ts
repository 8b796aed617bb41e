import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { X509Certificate } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { generate } from 'selfsigned'
import { isGatewayError } from '../../errors/gateway-error.js'
import { admitsCertificate } from '../authz/index.js'
import { admittedName, certificateIdentity, certificateNames, CERTIFICATE_ISSUER_ID, splitAltNames } from './certificate.js'

describe('splitAltNames reads node\'s subjectAltName text', () => {
  test('plain entries, in order', () => {
    assert.deepEqual(splitAltNames('DNS:a.example, URI:spiffe://example.org/billing, IP Address:127.0.0.1'), [
      ['DNS', 'a.example'],
      ['URI', 'spiffe://example.org/billing'],
      ['IP Address', '127.0.0.1'],
    ])
    assert.deepEqual(splitAltNames(''), [])
  })

  test('a JSON-quoted value keeps its commas, quotes and escapes, and is not split', () => {
    assert.deepEqual(splitAltNames('URI:"spiffe://x/a, DNS:admin.example", DNS:b.example'), [
      ['URI', 'spiffe://x/a, DNS:admin.example'],
      ['DNS', 'b.example'],
    ])
    assert.deepEqual(splitAltNames('DNS:"a\\"b", URI:c'), [
      ['DNS', 'a"b'],
      ['URI', 'c'],
    ])
  })

  test('text outside that grammar gives no names at all', () => {
    for (const text of ['DNS', 'DNS:a,DNS:b', 'URI:"unterminated', 'URI:"a"x, DNS:b', 'URI:"\\q", DNS:b']) {
      assert.deepEqual(splitAltNames(text), [], text)
    }
  })

  test('against node: a URI SAN holding ", DNS:" comes back whole, not as a second name', async () => {
    const pems = await generate([{ name: 'commonName', value: 'svc' }], {
      keySize: 2048,
      extensions: [{ name: 'subjectAltName', altNames: [{ type: 6, value: 'spiffe://x/a, DNS:admin.example' }, { type: 2, value: 'B.Example' }] }],
    })
    const text = new X509Certificate(pems.cert).subjectAltName!
    assert.deepEqual(certificateNames({ subject: { CN: 'svc' }, issuer: undefined, subjectAltName: text, validTo: '' }), [
      'uri:spiffe://x/a, DNS:admin.example',
      'dns:b.example',
      'cn:svc',
    ])
  })
})

describe('certificate names and a route\'s certificates', () => {
  test('DNS names compare without case, URIs and common names exactly; a repeated CN is no name', () => {
    assert.deepEqual(certificateNames({ subject: { CN: ['a', 'b'] }, issuer: undefined, subjectAltName: 'DNS:Svc.Internal, URI:spiffe://X/y', validTo: '' }), [
      'dns:svc.internal',
      'uri:spiffe://X/y',
    ])
    assert.equal(admittedName({ dns: 'SVC.internal' }), 'dns:svc.internal')
    assert.equal(admittedName({ uri: 'spiffe://X/y' }), 'uri:spiffe://X/y')
    assert.equal(admittedName({ commonName: 'Billing' }), 'cn:Billing')
  })

  test('admitsCertificate: one shared name admits; no names, or no list, admits nothing', () => {
    const admitted = new Set(['uri:spiffe://x/billing', 'dns:reports.internal'])
    assert.equal(admitsCertificate(admitted, ['cn:other', 'dns:reports.internal']), true)
    assert.equal(admitsCertificate(admitted, ['uri:spiffe://x/billing2', 'cn:billing']), false)
    assert.equal(admitsCertificate(admitted, []), false)
    assert.equal(admitsCertificate(admitted, undefined), false, 'a token identity on a certificate route')
    assert.equal(admitsCertificate(undefined, ['dns:reports.internal']), false)
  })
})

describe('certificateIdentity', () => {
  const raw = Buffer.from('not really DER, only hashed')
  const validTo = 'Nov 30 12:00:00 2026 GMT'
  function request(cert: Record<string, unknown> | undefined, authorized: boolean, authorizationError?: string): IncomingMessage {
    return { socket: { authorized, authorizationError, getPeerCertificate: () => cert ?? {} } } as unknown as IncomingMessage
  }
  const detailed = {
    raw,
    subject: { O: 'Example', CN: 'billing' },
    issuer: { O: 'Example', CN: 'Example Services CA' },
    subjectaltname: 'DNS:billing.internal, URI:spiffe://example.org/billing',
    valid_to: validTo,
  }
  const before = Date.parse(validTo) - 1

  function refusal(req: IncomingMessage, now: number): string | undefined {
    try {
      certificateIdentity(req, now)
      return undefined
    } catch (err) {
      assert.ok(isGatewayError(err))
      assert.equal(err.code, 'ERR_AUTHN_CERTIFICATE_REQUIRED')
      return err.reason
    }
  }

  test('a verified certificate: subject is its first URI SAN, issuer its CA\'s name, no token digest, no scopes', () => {
    const id = certificateIdentity(request(detailed, true), before)
    assert.equal(id.subject, 'spiffe://example.org/billing')
    assert.equal(id.issuer, 'O=Example, CN=Example Services CA')
    assert.equal(id.issuerId, CERTIFICATE_ISSUER_ID)
    assert.equal(id.tokenDigest, undefined)
    assert.equal(id.clientId, undefined)
    assert.equal(id.scopes.size, 0)
    assert.equal(id.expiresAt, Date.parse(validTo))
    assert.match(id.certificate!, /^[A-Za-z0-9_-]{43}$/)
    assert.deepEqual(id.certificateNames, ['dns:billing.internal', 'uri:spiffe://example.org/billing', 'cn:billing'])
  })

  test('the subject falls back to the first DNS SAN, then the CN', () => {
    assert.equal(certificateIdentity(request({ ...detailed, subjectaltname: 'DNS:b.internal, DNS:c.internal' }, true), before).subject, 'b.internal')
    assert.equal(certificateIdentity(request({ ...detailed, subjectaltname: undefined }, true), before).subject, 'billing')
  })

  test('one identity per connection: the same object for every request on it', () => {
    const req = request(detailed, true)
    assert.equal(certificateIdentity(req, before), certificateIdentity(req, before))
  })

  test('refused: no certificate, plain HTTP, one the listener did not verify or found revoked, one past its notAfter, one whose notAfter is unreadable', () => {
    assert.equal(refusal(request(undefined, false), before), 'certificate_missing')
    assert.equal(refusal({ socket: {} } as unknown as IncomingMessage, before), 'certificate_missing')
    assert.equal(refusal(request(detailed, false), before), 'certificate_unverified')
    assert.equal(refusal(request(detailed, false, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE'), before), 'certificate_unverified')
    assert.equal(refusal(request(detailed, false, 'CERT_REVOKED'), before), 'certificate_revoked')
    assert.equal(refusal(request(detailed, true), before + 1), 'certificate_expired')
    assert.equal(refusal(request({ ...detailed, valid_to: 'soon' }, true), 0), 'certificate_expired')
  })
})
