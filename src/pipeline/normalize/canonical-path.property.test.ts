import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createPathCanonicalizer, isRejection } from './canonical-path.js'

// Properties of the canonical path over generated request-targets (fast-check), checked against a
// reference written here a second time, the plain way (decode, split, stack), so that a slip in
// the single-pass implementation shows up as a disagreement. The table in canonical-path.test.ts
// pins named cases; these look for the ones nobody named.

const canonicalize = createPathCanonicalizer()

/** Pieces that matter to the rule, mixed with plain text. */
const PIECES = [
  'a', 'B', 'z9', '-', '_', '~', '.', '..', '...', '/', '//', '/./', '/../',
  '%2e', '%2E', '%2e%2e', '.%2e', '%2f', '%2F', '%5c', '%5C', '\\', ';', '%3b', '%3B',
  '%25', '%252e', '%', '%z', '%4', '%41', '%7e', '%7E', '%20', ' ', '#', '?', '+', '%2B', '%2b',
  '!', '$', '&', "'", '(', ')', '*', ',', '=', ':', '@', '[', ']', '"', '<', '>', '^', '`', '{', '|', '}',
  '%00', '%1f', '%7f', '%C2%80', '%C2%A0', '%C3%A9', '%c3%a9', '%C0%AE', '%C0%AF', '%E0%80%AE',
  '%ED%A0%80', '%F4%90%80%80', '%E0%83%A9', '%F0%80%83%A9', '%F0%8F%BF%BF', '%C3', '%A9', '%EF%BC%8E', '%EF%BC%8F', '%E2%84%AA', '%C4%B1', '%E6%97%A5', '%F0%9F%98%80',
  '\u00e9', '\u00ff', '\u0080', '\u0000', '\u007f', '\t',
]

const piece = fc.constantFrom(...PIECES)
/** A request-target path: "/" then pieces. */
const pathLike = fc.array(piece, { maxLength: 24 }).map((parts) => '/' + parts.join(''))
/** Any latin1 text after "/": what node's parser could hand over, and more. */
const latin1 = fc.string({ unit: fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c)), maxLength: 40 }).map((s) => '/' + s)
/** Plain pchar text, escapes of it, empty and dot segments: paths that should all be accepted unless a ".." climbs too far. */
const plain = fc
  .array(fc.constantFrom('a', 'B', '0', '-', '_', '~', '.', '..', '/', '/', '/', '//', '%41', '%7e', '%C3%A9', '%2e', ':', '@', '!'), { maxLength: 24 })
  .map((p) => '/' + p.join(''))
const anyTarget = fc.oneof(pathLike, latin1, plain)

const RUNS = { numRuns: 10_000 }

/** The reference: the meaning of a path as decoded segments and a trailing-slash flag, or null when a ".." climbs above the root. Only for inputs the gateway accepted. */
function meaning(target: string): { segments: string[]; trailing: boolean } | null {
  const bytes: number[] = []
  for (let i = 0; i < target.length; i++) {
    if (target[i] === '%') {
      bytes.push(parseInt(target.slice(i + 1, i + 3), 16))
      i += 2
    } else bytes.push(target.charCodeAt(i))
  }
  const parts = Buffer.from(bytes).toString('utf8').split('/').slice(1)
  const stack: string[] = []
  let trailing = false
  parts.forEach((part, i) => {
    const last = i === parts.length - 1
    if (part === '' || part === '.') trailing = last
    else if (part === '..') {
      if (stack.length === 0) throw new AboveRoot()
      stack.pop()
      trailing = last
    } else {
      stack.push(part)
      trailing = false
    }
  })
  return { segments: stack, trailing: trailing || stack.length === 0 }
}
class AboveRoot extends Error {}

function meaningOrNull(target: string) {
  try {
    return meaning(target)
  } catch (err) {
    if (err instanceof AboveRoot) return null
    throw err
  }
}

/** Not strict UTF-8 (overlong, surrogate, truncated), a C1 control, or a character that NFKC or case mapping turns into ASCII. */
function unicodeProblem(bytes: Buffer): boolean {
  let text: string
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return true
  }
  for (const ch of text) {
    const cp = ch.codePointAt(0)!
    if (cp < 0x80) continue
    if (cp <= 0x9f) return true
    if ([ch.normalize('NFKC'), ch.toLowerCase(), ch.toUpperCase()].some((v) => /[\x00-\x7f]/.test(v))) return true
  }
  return false
}

/** Only pchar (without ";" and "+"), "/" and uppercase escapes; no empty, "." or ".." segment. */
const CANONICAL = /^\/(?:(?:[A-Za-z0-9\-._~!$&'()*,=:@]|%[0-9A-F]{2})+\/?)*$/

test('a canonical path is its own canonical form (idempotence)', () => {
  fc.assert(
    fc.property(anyTarget, (target) => {
      const once = canonicalize(target)
      if (isRejection(once)) return
      assert.equal(canonicalize(once), once)
    }),
    RUNS,
  )
})

test('a canonical path has only pchar bytes and uppercase escapes, and no empty, "." or ".." segment', () => {
  fc.assert(
    fc.property(anyTarget, (target) => {
      const out = canonicalize(target)
      if (isRejection(out)) return
      assert.match(out, CANONICAL)
      for (const segment of out.split('/').slice(1, -1)) assert.ok(segment !== '' && segment !== '.' && segment !== '..', out)
      const last = out.split('/').at(-1)!
      assert.ok(last !== '.' && last !== '..', out)
      // Never an escape for a byte that decoders treat specially.
      assert.doesNotMatch(out, /%(?:2F|5C|25|3B|0[0-9A-F]|1[0-9A-F]|7F)/)
    }),
    RUNS,
  )
})

test('an accepted path means what the reference decoder says: the same segments, the same trailing slash', () => {
  fc.assert(
    fc.property(anyTarget, (target) => {
      const out = canonicalize(target)
      if (isRejection(out)) return
      const expected = meaningOrNull(target)
      assert.notEqual(expected, null, `accepted although a ".." climbs above the root: ${JSON.stringify(target)}`)
      const got = meaning(out)!
      assert.deepEqual(got, expected, JSON.stringify(target))
    }),
    RUNS,
  )
})

test('refused whenever the decoded path holds a byte decoders disagree on, or climbs above the root', () => {
  fc.assert(
    fc.property(pathLike, (target) => {
      const decoded = target.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
      const encodedSlash = /%2f/i.test(target)
      const dangerous =
        /[\\;\x00-\x1f\x7f]/.test(decoded) || /%25/.test(target) || encodedSlash || /%(?![0-9A-Fa-f]{2})/.test(target) || unicodeProblem(Buffer.from(decoded, 'latin1'))
      if (dangerous) assert.ok(isRejection(canonicalize(target)), JSON.stringify(target))
    }),
    RUNS,
  )
})

test('a path of plain pchar text and dot segments that stay under the root is always accepted', () => {
  fc.assert(
    fc.property(plain, (target) => {
      const out = canonicalize(target)
      if (meaningOrNull(target) === null) assert.ok(isRejection(out) && out.reason === 'above_root', JSON.stringify(target))
      else assert.ok(!isRejection(out), `${JSON.stringify(target)}: ${isRejection(out) ? out.reason : ''}`)
    }),
    RUNS,
  )
})
