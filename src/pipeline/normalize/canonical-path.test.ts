import { test } from 'node:test'
import assert from 'node:assert/strict'
import { checkQuery, createPathCanonicalizer, isRejection, type RejectReason } from './canonical-path.js'
import { seededRandom } from '../../../test/helpers/seeded.js'

const canonicalize = createPathCanonicalizer()

/** input → canonical path, or the reason it is refused. */
const accepted: ReadonlyArray<readonly [string, string]> = [
  ['/', '/'],
  ['/a', '/a'],
  ['/a/b/c', '/a/b/c'],
  ['/a/', '/a/'],
  ['/orders/123', '/orders/123'],
  ['/Orders/ABC', '/Orders/ABC'], // case is kept: paths are case-sensitive (RFC 3986 §6.2.2.1)
  // dot segments, raw or encoded (RFC 3986 §5.2.4)
  ['/a/../b', '/b'],
  ['/a/./b', '/a/b'],
  ['/a/%2e/b', '/a/b'],
  ['/a/%2E%2E/b', '/b'],
  ['/a/.%2e/b', '/b'],
  ['/a/%2e./b', '/b'],
  ['/a/..', '/'],
  ['/a/.', '/a/'],
  ['/a/b/..', '/a/'],
  ['/a/b/../..', '/'],
  ['/./', '/'],
  ['/.', '/'],
  ['/public/../admin/x', '/admin/x'],
  ['/public/%2e%2e/admin/x', '/admin/x'],
  // dots that are not whole segments are ordinary characters
  ['/a.json', '/a.json'],
  ['/.well-known/openid-configuration', '/.well-known/openid-configuration'],
  ['/...', '/...'],
  ['/a/.../b', '/a/.../b'],
  ['/a/..b/c', '/a/..b/c'],
  ['/a/b../c', '/a/b../c'],
  ['/v1.2/x', '/v1.2/x'],
  // repeated slashes collapse (before dot segments are resolved)
  ['/a//b', '/a/b'],
  ['//a', '/a'],
  ['//', '/'],
  ['/a///', '/a/'],
  ['/a//../b', '/b'],
  // decoded once, re-encoded in one form: unreserved raw, the rest %XX uppercase
  ['/%7e%41%62', '/~Ab'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/%e4%b8%ad%e6%96%87', '/%E4%B8%AD%E6%96%87'],
  ['/emoji/%F0%9F%98%80', '/emoji/%F0%9F%98%80'],
  ['/a%20b', '/a%20b'],
  ['/a%3Fb', '/a%3Fb'],
  ['/a%23b', '/a%23b'],
  ['/a%3fb', '/a%3Fb'],
  ['/a+b', '/a%2Bb'],
  ['/a%2bb', '/a%2Bb'],
  ['/a|b', '/a%7Cb'],
  ['/a"b', '/a%22b'],
  ['/a{b}', '/a%7Bb%7D'],
  ['/[x]', '/%5Bx%5D'],
  ['/a^b`c<d>', '/a%5Eb%60c%3Cd%3E'],
  ["/!$&'()*,=:@", "/!$&'()*,=:@"],
  ['/%21%24%26%27%28%29%2A%2C%3D%3A%40', "/!$&'()*,=:@"],
  ['/a-b_c~d', '/a-b_c~d'],
  ['/%2D%5F', '/-_'],
  // a raw non-ASCII byte (node hands the target over as latin1) means the same as its escape
  ['/caf\u00c3\u00a9', '/caf%C3%A9'],
]

const refused: ReadonlyArray<readonly [string, RejectReason]> = [
  // not origin-form (RFC 9112 §3.2)
  ['', 'not_origin_form'],
  ['*', 'not_origin_form'],
  ['http://evil.example/admin', 'not_origin_form'],
  ['a/b', 'not_origin_form'],
  // climbing above the root
  ['/..', 'above_root'],
  ['/../a', 'above_root'],
  ['/%2e%2e/admin', 'above_root'],
  ['/%2E%2E/', 'above_root'],
  ['/a/../..', 'above_root'],
  ['/a/../../b', 'above_root'],
  ['//..', 'above_root'],
  // encoded separators and backslashes
  ['/admin%2fsecret', 'encoded_slash'],
  ['/admin%2Fsecret', 'encoded_slash'],
  ['/public/..%2fadmin/x', 'encoded_slash'],
  ['/..%2f', 'encoded_slash'],
  ['/a%5cb', 'backslash'],
  ['/a%5Cb', 'backslash'],
  ['/a\\b', 'backslash'],
  ['/public\\..\\admin', 'backslash'],
  // path parameters
  ['/admin;jsessionid=1', 'path_params'],
  ['/admin;/x', 'path_params'],
  ['/public/..;/admin', 'path_params'],
  ['/admin%3bx', 'path_params'],
  ['/admin%3Bx', 'path_params'],
  // double encoding: an escape that decodes to "%" is refused, not decoded again
  ['/a%252e%252e/', 'double_encoding'],
  ['/%252f', 'double_encoding'],
  ['/100%25', 'double_encoding'],
  // malformed escapes
  ['/%zz', 'bad_percent'],
  ['/%', 'bad_percent'],
  ['/a%4', 'bad_percent'],
  ['/a%4g', 'bad_percent'],
  ['/%u002e%u002e/', 'bad_percent'],
  ['/a%%41', 'bad_percent'],
  // control characters, raw or encoded (C0, DEL, C1), and raw space
  ['/a%00b', 'control_char'],
  ['/a\u0000b', 'control_char'],
  ['/a%0Ab', 'control_char'],
  ['/a%0d%0aSet-Cookie:x', 'control_char'],
  ['/a%09', 'control_char'],
  ['/a%1F', 'control_char'],
  ['/a%7F', 'control_char'],
  ['/a\u007fb', 'control_char'],
  ['/a%C2%85', 'control_char'],
  ['/a%C2%9F', 'control_char'],
  ['/a b', 'control_char'],
  ['/a\tb', 'control_char'],
  // fragment
  ['/a#frag', 'fragment'],
  ['/a/#', 'fragment'],
  // invalid UTF-8
  ['/caf%C3', 'invalid_utf8'],
  ['/%C3%28', 'invalid_utf8'],
  ['/%80', 'invalid_utf8'],
  ['/%FF', 'invalid_utf8'],
  ['/%C0%AE%C0%AE/', 'invalid_utf8'], // overlong "."
  ['/%C0%AF', 'invalid_utf8'], // overlong "/"
  ['/%E0%80%AE', 'invalid_utf8'], // overlong "." in 3 bytes
  ['/%F0%80%80%AE', 'invalid_utf8'], // overlong "." in 4 bytes
  ['/%ED%A0%80', 'invalid_utf8'], // UTF-16 surrogate U+D800
  ['/%F4%90%80%80', 'invalid_utf8'], // above U+10FFFF
  ['/%E4%B8', 'invalid_utf8'], // truncated
  ['/caf\u00c3', 'invalid_utf8'], // raw truncated sequence
  ['/\u4e2d', 'invalid_utf8'], // not a byte: never comes off the wire
  // non-ASCII that an upstream could turn into ASCII
  ['/%EF%BC%8E%EF%BC%8E/admin', 'unicode_confusable'], // fullwidth full stops "．．"
  ['/a%EF%BC%8Fb', 'unicode_confusable'], // fullwidth solidus "／"
  ['/a%EF%BC%BCb', 'unicode_confusable'], // fullwidth reverse solidus "＼"
  ['/%E2%80%A5/', 'unicode_confusable'], // two dot leader "‥"
  ['/%E2%84%AAey', 'unicode_confusable'], // Kelvin sign → "k"
  ['/adm%C4%B1n', 'unicode_confusable'], // dotless ı → "I"
  ['/%C5%BFecret', 'unicode_confusable'], // long s → "S"
  ['/%EF%AC%81le', 'unicode_confusable'], // ligature "ﬁ" → "fi"
  ['/%EF%BC%A1dmin', 'unicode_confusable'], // fullwidth "Ａ"
]

for (const [input, expected] of accepted) {
  test(`canonicalizes ${JSON.stringify(input)} to ${JSON.stringify(expected)}`, () => {
    assert.equal(canonicalize(input), expected)
  })
}

for (const [input, reason] of refused) {
  test(`refuses ${JSON.stringify(input)} with reason ${reason}`, () => {
    const r = canonicalize(input)
    assert.ok(isRejection(r), `expected a rejection, got ${JSON.stringify(r)}`)
    assert.equal(r.reason, reason)
    assert.equal(typeof r.detail, 'string')
  })
}

test('the detail of a rejection never echoes the request', () => {
  const r = canonicalize('/<script>secret-token%2f')
  assert.ok(isRejection(r))
  assert.ok(!r.detail.includes('secret-token'))
  assert.ok(!r.detail.includes('<script>'))
})

test('only the part before the end index is the path', () => {
  const target = '/a/../b?x=/../y'
  assert.equal(canonicalize(target, target.indexOf('?')), '/b')
  assert.equal(canonicalize('/a?b=1', 2), '/a')
  assert.equal(canonicalize('?x', 0), canonicalize(''))
})

test('a path longer than maxLength is refused, raw or after re-encoding', () => {
  const small = createPathCanonicalizer({ maxLength: 16 })
  assert.equal(small('/' + 'a'.repeat(15)), '/' + 'a'.repeat(15))
  assert.equal((small('/' + 'a'.repeat(16)) as { reason: string }).reason, 'too_long')
  // 6 raw "+" fit in 7 characters but become 18 once written as %2B
  assert.equal((small('/' + '+'.repeat(6)) as { reason: string }).reason, 'too_long')
  assert.equal(small('/' + '+'.repeat(5)), '/' + '%2B'.repeat(5))
})

test('the default limit accepts an 8 KiB path and refuses one character more', () => {
  assert.equal(canonicalize('/' + 'a'.repeat(8191)), '/' + 'a'.repeat(8191))
  assert.equal((canonicalize('/' + 'a'.repeat(8192)) as { reason: string }).reason, 'too_long')
})

test('the same canonicalizer gives the same answer after a long input reused its buffers', () => {
  const c = createPathCanonicalizer({ maxLength: 64 })
  assert.equal(c('/%41'.repeat(15)), '/A'.repeat(15))
  assert.equal(c('/b/%2e%2e/c'), '/c')
  assert.equal(c('/%41'), '/A')
})

const PIECES = ['/', '/', 'a', 'B', '.', '..', '%2e', '%2E', '%2f', '%41', '%25', '%C3%A9', '%c3', '%a9', '~', '+', ';', '%3b', '\\', '%5c', '%00', ' ', '#', '?', '%', 'zz', '%7e', '!', '@', ':', '|', '%E2%84%AA', '\u00c3', '\u00a9']

test('the canonical form is a fixed point and contains only pchar, "/" and uppercase escapes', () => {
  // Seeded, so a failure reproduces.
  const random = seededRandom(20240601)
  let accepted = 0
  for (let n = 0; n < 20000; n++) {
    let s = '/'
    const len = 1 + random(10)
    for (let i = 0; i < len; i++) s += PIECES[random(PIECES.length)]
    const q = s.indexOf('?')
    const once = canonicalize(s, q === -1 ? s.length : q)
    if (isRejection(once)) continue
    accepted++
    assert.equal(canonicalize(once), once, `not a fixed point: ${JSON.stringify(s)} → ${once}`)
    assert.match(once, /^(?:\/|(?:\/(?:[A-Za-z0-9\-._~!$&'()*,=:@]|%[0-9A-F]{2})+)+\/?)$/, JSON.stringify(s))
    assert.doesNotMatch(once, /(?:^|\/)\.{1,2}(?:\/|$)/, `dot segment left in ${once}`)
    assert.doesNotMatch(once, /%(?:2F|5C|3B|25|0[0-9A-F]|1[0-9A-F]|7F)/, `refused byte re-encoded in ${once}`)
    // what an upstream sees after its own single decode: valid UTF-8, nothing to decode again,
    // no separator or dot segment that was not already visible to the router
    const decoded = decodeURIComponent(once)
    assert.doesNotMatch(decoded, /[\\;%\u0000-\u001f\u007f]/, JSON.stringify(s))
    assert.equal(decoded.split('/').length, once.split('/').length, JSON.stringify(s))
    assert.ok(!decoded.split('/').some((seg) => seg === '.' || seg === '..'), JSON.stringify(s))
  }
  assert.ok(accepted > 1000, `too few accepted samples (${accepted}) for the property to mean anything`)
})

test('a query keeps everything but control characters, spaces and "#"', () => {
  assert.equal(checkQuery('/a?b=1&c=%2F..%00', 2), undefined)
  assert.equal(checkQuery('/a?', 2), undefined)
  assert.equal(checkQuery('/a?b=\u0001', 2)?.reason, 'control_char')
  assert.equal(checkQuery('/a?b=\u007f', 2)?.reason, 'control_char')
  assert.equal(checkQuery('/a?b= c', 2)?.reason, 'control_char')
  assert.equal(checkQuery('/a?b#c', 2)?.reason, 'fragment')
})
