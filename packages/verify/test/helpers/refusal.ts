import assert from 'node:assert/strict'
import { isVerifyError } from '@portcullis/verify'

/** The VerifyError a verification is rejected with; fails the test if it succeeds or throws anything else. */
export async function refusal(promise: Promise<unknown>) {
  try {
    await promise
  } catch (err) {
    assert.ok(isVerifyError(err), `a VerifyError, not ${String(err)}`)
    return err
  }
  assert.fail('the verification succeeded')
}

/** The current time in whole seconds, as in `iat`/`exp`. */
export const nowSec = () => Math.floor(Date.now() / 1000)
