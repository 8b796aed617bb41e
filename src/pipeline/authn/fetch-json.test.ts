import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { FetchError, fetchJson } from './fetch-json.js'

async function failure(url: string): Promise<FetchError> {
  try {
    await fetchJson(url, 5_000, new AbortController().signal)
  } catch (err) {
    assert.ok(err instanceof FetchError)
    return err
  }
  assert.fail('fetchJson should have failed')
}

test('a failed request is described by its error code, never by a message that quotes the URL', async () => {
  const withCredentials = await failure('https://svc:TopSecretPw@127.0.0.1:1/jwks')
  assert.equal(withCredentials.reason, 'network')
  assert.ok(!withCredentials.message.includes('TopSecretPw'), withCredentials.message)
  assert.ok(!withCredentials.message.includes('svc:'), withCredentials.message)

  const unresolvable = await failure('http://portcullis-test.invalid/jwks')
  assert.match(unresolvable.message, /^request failed \((ENOTFOUND|EAI_AGAIN|EAI_FAIL)\)$/)
})

test('a refused connection names its code', async () => {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((r) => server.close(() => r()))
  const refused = await failure(`http://127.0.0.1:${port}/jwks`)
  assert.equal(refused.message, 'request failed (ECONNREFUSED)')
})
