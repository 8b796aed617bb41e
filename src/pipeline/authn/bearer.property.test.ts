import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { hasQueryToken } from '@portcullis/verify/rules'

// RFC 6750 §2.3 tokens in the query are refused however the name is spelled: every spelling a
// query parser (node's, qs, Rack, PHP) files under access_token, in any letter case and any
// percent-encoding of its characters, among other parameters.

/** Names a parser reads as access_token. */
const ACCESS_TOKEN = ['access_token', 'access.token', 'access token', 'access[token', 'access_token[]', 'access_token[0]', 'access_token[a][b]', ' access_token']
/** Names that are not it. */
const OTHER = ['access_tokens', 'xaccess_token', 'access-token', 'accesstoken', 'access__token', 'token', 'access_toke', 'my_access_token', 'access_token_x', '[access_token]']

/** A name spelled with random case and random escapes ("%xx" or "%XX"; a space also as "+"). */
function spelled(name: string) {
  return fc.array(fc.tuple(fc.boolean(), fc.constantFrom('raw', 'escape', 'ESCAPE')), { minLength: name.length, maxLength: name.length }).map((choices) =>
    [...name]
      .map((ch, i) => {
        const [upper, how] = choices[i]
        const c = upper ? ch.toUpperCase() : ch
        if (c === ' ' && how === 'raw') return '+'
        if (how === 'raw' && !'&;=%#'.includes(c)) return c
        const hex = c.charCodeAt(0).toString(16).padStart(2, '0')
        return '%' + (how === 'ESCAPE' ? hex.toUpperCase() : hex)
      })
      .join(''),
  )
}

const otherParams = fc.array(fc.constantFrom('a=1', 'b', 'x=%zz', 'q=access_token', 'access=1', 'token=abc'), { maxLength: 3 })

function query(name: fc.Arbitrary<string>) {
  return fc
    .tuple(name, otherParams, otherParams, fc.constantFrom('&', ';'), fc.constantFrom('', '=', '=abc.def.ghi'), fc.boolean())
    .map(([n, before, after, sep, value, mark]) => (mark ? '?' : '') + [...before, n + value, ...after].join(sep))
}

test('an access_token parameter is found in every spelling a parser reads as that name', () => {
  fc.assert(
    fc.property(query(fc.constantFrom(...ACCESS_TOKEN).chain(spelled)), (q) => assert.equal(hasQueryToken(q), true, q)),
    { numRuns: 5000 },
  )
})

test('other names, however spelled, are not taken for it', () => {
  fc.assert(
    fc.property(query(fc.constantFrom(...OTHER).chain(spelled)), (q) => assert.equal(hasQueryToken(q), false, q)),
    { numRuns: 5000 },
  )
})
