import { test } from 'node:test'
import assert from 'node:assert/strict'
import { http1View, sessionFailure } from './http2.js'
import { checkHttp2Host } from '../pipeline/sanitize/framing.js'
import { isGatewayError } from '../errors/gateway-error.js'

const pseudo = { ':method': 'POST', ':path': '/a', ':scheme': 'https', ':authority': 'gw.example:8443' }

test('the HTTP/1.1 view of an HTTP/2 request has no pseudo-header field, a Host from :authority, and marks a body without length as chunked', () => {
  const view = http1View({ ...pseudo, accept: '*/*', cookie: 'a=1; b=2' }, false)
  assert.deepEqual(view, { accept: '*/*', cookie: 'a=1; b=2', host: 'gw.example:8443', 'transfer-encoding': 'chunked' })
  // A Host the client sent stays (sanitize compares it with :authority); a declared length frames the body.
  assert.deepEqual(http1View({ ...pseudo, host: 'gw.example:8443', 'content-length': '3' }, false), { host: 'gw.example:8443', 'content-length': '3' })
  // No body (END_STREAM on the headers): nothing to frame.
  assert.deepEqual(http1View({ ...pseudo }, true), { host: 'gw.example:8443' })
  assert.deepEqual(http1View({ ':method': 'GET', ':path': '/', ':scheme': 'https' }, true), {})
})

function reason(headers: Record<string, string>, raw: string[]): string | undefined {
  try {
    checkHttp2Host(headers, raw)
    return undefined
  } catch (err) {
    assert.ok(isGatewayError(err))
    return err.reason
  }
}

test('an HTTP/2 request names one authority: a Host that differs from :authority, two Hosts, none, or an invalid one are refused', () => {
  const raw = (...fields: string[]) => [':method', 'GET', ':path', '/', ...fields]
  assert.equal(reason({ host: 'gw.example' }, raw(':authority', 'gw.example')), undefined)
  assert.equal(reason({ host: 'gw.example' }, raw(':authority', 'gw.example', 'host', 'GW.example')), undefined, 'names compare case-insensitively')
  assert.equal(reason({ host: 'gw.example' }, raw('host', 'gw.example')), undefined, 'Host alone will do')
  assert.equal(reason({ host: 'evil.example' }, raw(':authority', 'gw.example', 'host', 'evil.example')), 'host_authority_mismatch')
  assert.equal(reason({ host: 'gw.example' }, raw(':authority', 'gw.example', 'host', 'gw.example:443')), 'host_authority_mismatch')
  assert.equal(reason({ host: 'gw.example' }, raw('host', 'gw.example', 'host', 'gw.example')), 'multiple_host')
  assert.equal(reason({}, raw()), 'missing_host')
  for (const bad of ['a@gw.example', 'gw.example, evil.example', 'gw.example/x']) assert.equal(reason({ host: bad }, raw(':authority', bad)), 'invalid_host', bad)
})

test("an HTTP/2 session's error is named by what the client did", () => {
  assert.equal(sessionFailure({ errno: -904 }), 'flood')
  assert.equal(sessionFailure({ errno: -505 }), 'protocol_error')
  assert.equal(sessionFailure({ errno: -903 }), 'bad_preface')
  assert.equal(sessionFailure({ code: 'PORTCULLIS_RAPID_RESET' }), 'rapid_reset')
  assert.equal(sessionFailure({ errno: -1 }), 'session_error')
  assert.equal(sessionFailure({}), 'session_error')
})
