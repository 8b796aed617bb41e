/**
 * The one canonical form of a request path (docs/normalize.md). Everything after normalize, route
 * matching included, sees this form, and forward sends exactly this form upstream, so what was
 * authorized is what arrives.
 *
 * The rule, in order:
 *  1. Decode every percent-escape exactly once. A raw byte and its escape mean the same thing.
 *  2. Refuse what different decoders disagree on: a "%" without two hex digits, an encoded "/"
 *     or "\", any backslash, any ";" (path parameters), any "%" after decoding (double encoding),
 *     control characters (C0, DEL, C1), invalid or overlong UTF-8, and non-ASCII characters that
 *     turn into ASCII under compatibility normalization or case mapping.
 *  3. Collapse empty segments ("//") and resolve "." and ".." (RFC 3986 §5.2.4); a ".." that would
 *     climb above the root is refused.
 *  4. Re-encode: bytes outside the RFC 3986 pchar set (minus ";" and "+") are written as %XX with
 *     uppercase hex (RFC 3986 §2.1, §6.2.2.1), everything else raw.
 */

export const DEFAULT_MAX_PATH_LENGTH = 8192

/** Machine reasons, recorded in the security event of a rejected request. */
export type RejectReason =
  | 'not_origin_form'
  | 'too_long'
  | 'fragment'
  | 'bad_percent'
  | 'encoded_slash'
  | 'backslash'
  | 'path_params'
  | 'double_encoding'
  | 'control_char'
  | 'invalid_utf8'
  | 'unicode_confusable'
  | 'above_root'
  | 'route_ambiguous'

export interface Rejection {
  readonly reason: RejectReason
  /** Safe text for the problem body: describes the rule, never echoes the request. */
  readonly detail: string
}

const reject = (reason: RejectReason, detail: string): Rejection => Object.freeze({ reason, detail })

/** One frozen object per reason, so refusing a request allocates nothing here. */
export const REJECTIONS = Object.freeze({
  not_origin_form: reject('not_origin_form', 'The request-target must be a path starting with "/" (RFC 9112 §3.2.1 origin-form).'),
  too_long: reject('too_long', 'The request path is too long.'),
  fragment: reject('fragment', 'A request-target must not contain a fragment ("#").'),
  bad_percent: reject('bad_percent', 'A "%" in the path is not followed by two hexadecimal digits.'),
  encoded_slash: reject('encoded_slash', 'The path contains an encoded "/" (%2F).'),
  backslash: reject('backslash', 'The path contains a backslash, raw or encoded (%5C).'),
  path_params: reject('path_params', 'The path contains ";" (path parameters), raw or encoded (%3B).'),
  double_encoding: reject('double_encoding', 'The path contains an encoded "%" (%25): percent-escapes are decoded exactly once.'),
  control_char: reject('control_char', 'The path contains a control character, raw or encoded.'),
  invalid_utf8: reject('invalid_utf8', 'The decoded path is not valid UTF-8.'),
  unicode_confusable: reject('unicode_confusable', 'The path contains a character that normalizes or case-maps to ASCII.'),
  above_root: reject('above_root', 'A ".." segment climbs above the root of the path.'),
  route_ambiguous: reject('route_ambiguous', 'The path would select a different route if letter case or a trailing "/" were ignored.'),
}) satisfies Record<RejectReason, Rejection>

export function isRejection(value: string | Rejection): value is Rejection {
  return typeof value !== 'string'
}

const SLASH = 0x2f
const DOT = 0x2e
const PERCENT = 0x25

/** Hex digit value, or -1. */
const HEX = new Int8Array(128).fill(-1)
for (let i = 0; i < 10; i++) HEX[0x30 + i] = i
for (let i = 0; i < 6; i++) HEX[0x41 + i] = HEX[0x61 + i] = 10 + i

/**
 * Bytes written raw in the canonical form: RFC 3986 §3.3 pchar = unreserved / sub-delims / ":" / "@",
 * except ";" (refused: Tomcat and Spring strip ";params", so the upstream would route a different
 * path) and "+" (always written %2B, because form-style decoders read a raw "+" in a path as a space).
 */
const RAW = new Uint8Array(256)
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&\'()*,=:@') RAW[c.charCodeAt(0)] = 1

/** Characters the fast path takes as they are: RAW plus "/" (dot segments and "//" checked apart). */
const FAST = new Uint8Array(128)
for (let i = 0; i < 128; i++) FAST[i] = RAW[i]
FAST[SLASH] = 1

const HEX_UPPER = '0123456789ABCDEF'

/** A raw or decoded byte the rule refuses outright, or undefined. */
function refusedByte(b: number, encoded: boolean): Rejection | undefined {
  if (b < 0x20 || b === 0x7f) return REJECTIONS.control_char
  switch (b) {
    case 0x5c: // "\": Windows and some Java/Node servers treat it as "/" (CVE-2019-0232 family)
      return REJECTIONS.backslash
    case 0x3b: // ";": RFC 3986 §3.3 path parameters, stripped by Tomcat/Spring before routing
      return REJECTIONS.path_params
    case SLASH:
      return encoded ? REJECTIONS.encoded_slash : undefined
    case PERCENT:
      return encoded ? REJECTIONS.double_encoding : undefined
    case 0x23: // "#": a raw one starts a fragment, which never belongs in a request-target
      return encoded ? undefined : REJECTIONS.fragment
    case 0x20: // raw space: not a URI character (node's parser refuses it first)
      return encoded ? undefined : REJECTIONS.control_char
  }
  return undefined
}

/**
 * A code point an upstream could turn into ASCII: under NFKC (fullwidth "．" → ".", "／" → "/")
 * or under case mapping (Kelvin sign → "k", dotless "ı" → "I", "ſ" → "S"). Such a path could reach
 * an ASCII route the gateway did not match, so it is refused (cf. Unicode TR #36 §2.3).
 */
function mapsToAscii(cp: number): boolean {
  const byte = cp >> 3
  const bit = 1 << (cp & 7)
  if ((known[byte] & bit) !== 0) return (confusable[byte] & bit) !== 0
  const s = String.fromCodePoint(cp)
  const result = hasAscii(s.normalize('NFKC')) || hasAscii(s.toLowerCase()) || hasAscii(s.toUpperCase())
  known[byte] |= bit
  if (result) confusable[byte] |= bit
  return result
}

// A lazily filled answer per code point (2 x 136 KiB), so a long non-ASCII path costs one lookup
// per character after the first time, and the cache cannot grow past its size.
const known = new Uint8Array(0x110000 >> 3)
const confusable = new Uint8Array(0x110000 >> 3)

function hasAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) < 0x80) return true
  return false
}

/**
 * Strict UTF-8 check of buf[0, n) (RFC 3629 §3-4: no overlong forms, no surrogates, nothing above
 * U+10FFFF), plus the C1-control and ASCII-confusable checks on each non-ASCII code point.
 */
function checkUtf8(buf: Uint8Array, n: number): Rejection | undefined {
  let i = 0
  while (i < n) {
    const b0 = buf[i]
    if (b0 < 0x80) {
      i++
      continue
    }
    let cp: number
    let len: number
    let min: number
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      len = 2
      cp = b0 & 0x1f
      min = 0x80
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      len = 3
      cp = b0 & 0x0f
      min = 0x800
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      len = 4
      cp = b0 & 0x07
      min = 0x10000
    } else {
      // 0x80-0xC1 (stray continuation or overlong 2-byte lead such as %C0%AE) and 0xF5-0xFF
      return REJECTIONS.invalid_utf8
    }
    if (i + len > n) return REJECTIONS.invalid_utf8
    for (let k = 1; k < len; k++) {
      const b = buf[i + k]
      if ((b & 0xc0) !== 0x80) return REJECTIONS.invalid_utf8
      cp = (cp << 6) | (b & 0x3f)
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return REJECTIONS.invalid_utf8
    if (cp <= 0x9f) return REJECTIONS.control_char // C1 controls U+0080-U+009F
    if (mapsToAscii(cp)) return REJECTIONS.unicode_confusable
    i += len
  }
  return undefined
}

export interface PathCanonicalizerOptions {
  /** Longest raw path and longest canonical path accepted, in characters. */
  readonly maxLength?: number
}

/**
 * Returns canonicalize(target, end): the canonical form of target[0, end) (the path part of an
 * origin-form request-target, without its query), or the Rejection that says why there is none.
 * The scratch buffers are allocated once here; canonicalize is synchronous, so one set suffices.
 *
 * @example
 *   const canonicalize = createPathCanonicalizer()
 *   canonicalize('/a/%2e%2e/b%7e')   // '/b~'
 *   canonicalize('/admin%2fx')       // REJECTIONS.encoded_slash
 */
export function createPathCanonicalizer(options: PathCanonicalizerOptions = {}) {
  const maxLength = options.maxLength ?? DEFAULT_MAX_PATH_LENGTH
  const bytes = new Uint8Array(maxLength)
  // Segment boundaries of the resolved path: [start0, end0, start1, end1, ...]
  const segs = new Int32Array(maxLength + 2)
  // Worst case every decoded byte becomes "%XX".
  const out = Buffer.allocUnsafe(maxLength * 3 + 1)

  /**
   * The common case, in one charCode scan and no allocation: only characters written raw in the
   * canonical form, no "//" and no "." or ".." segment. Then the input already is canonical.
   */
  function isCanonical(target: string, end: number): boolean {
    let prev = SLASH
    let segLen = 0
    let dots = 0
    for (let i = 1; i < end; i++) {
      const c = target.charCodeAt(i)
      if (c >= 128 || FAST[c] === 0) return false
      if (c === SLASH) {
        if (prev === SLASH) return false
        if (dots === segLen && dots <= 2) return false // "." or ".." segment (segLen > 0 here)
        segLen = 0
        dots = 0
      } else {
        segLen++
        if (c === DOT) dots++
      }
      prev = c
    }
    return !(segLen > 0 && dots === segLen && dots <= 2)
  }

  function slow(target: string, end: number): string | Rejection {
    // 1. Decode once into bytes, refusing what decoders disagree on as soon as it is seen.
    let n = 0
    for (let i = 0; i < end; i++) {
      let c = target.charCodeAt(i)
      let encoded = false
      if (c === PERCENT) {
        const h = i + 2 < end ? hexPair(target.charCodeAt(i + 1), target.charCodeAt(i + 2)) : -1
        if (h < 0) return REJECTIONS.bad_percent
        c = h
        encoded = true
        i += 2
      } else if (c > 0xff) {
        // node's parser hands the request-target over as latin1, one char per byte; anything
        // wider did not come off the wire and has no byte form.
        return REJECTIONS.invalid_utf8
      }
      const refused = refusedByte(c, encoded)
      if (refused) return refused
      bytes[n++] = c
    }

    // 2. The decoded bytes must be strict UTF-8 with no confusable characters.
    const bad = checkUtf8(bytes, n)
    if (bad) return bad

    // 3. Segments: collapse empty ones, resolve "." and ".." (RFC 3986 §5.2.4). Every "/" left in
    // bytes is a raw separator, since an encoded one was refused above.
    let k = 0 // number of segments kept (pairs in segs)
    let trailing = false
    let s = 1 // bytes[0] is the leading "/"
    while (s <= n) {
      let e = s
      while (e < n && bytes[e] !== SLASH) e++
      const len = e - s
      const last = e >= n
      if (len === 0 || (len === 1 && bytes[s] === DOT)) {
        // "//" collapses; "/./" is the same segment. At the end both leave a trailing "/".
        trailing = last
      } else if (len === 2 && bytes[s] === DOT && bytes[s + 1] === DOT) {
        // A ".." above the root has no meaning (RFC 3986 §5.2.4 would drop it silently); it is a
        // traversal attempt, so it is refused instead of being rewritten into some other path.
        if (k === 0) return REJECTIONS.above_root
        k--
        trailing = last
      } else {
        segs[2 * k] = s
        segs[2 * k + 1] = e
        k++
        trailing = false
      }
      s = e + 1
    }

    // 4. Re-encode: pchar bytes raw, everything else %XX with uppercase hex (RFC 3986 §6.2.2.1).
    let o = 0
    for (let j = 0; j < k; j++) {
      out[o++] = SLASH
      for (let p = segs[2 * j], pe = segs[2 * j + 1]; p < pe; p++) {
        const b = bytes[p]
        if (RAW[b] === 1) {
          out[o++] = b
        } else {
          out[o++] = PERCENT
          out[o++] = HEX_UPPER.charCodeAt(b >> 4)
          out[o++] = HEX_UPPER.charCodeAt(b & 0x0f)
        }
      }
    }
    if (k === 0 || trailing) out[o++] = SLASH
    if (o > maxLength) return REJECTIONS.too_long
    return out.toString('latin1', 0, o)
  }

  return function canonicalize(target: string, end: number = target.length): string | Rejection {
    if (end === 0 || target.charCodeAt(0) !== SLASH) return REJECTIONS.not_origin_form
    if (end > maxLength) return REJECTIONS.too_long
    if (isCanonical(target, end)) return end === target.length ? target : target.slice(0, end)
    return slow(target, end)
  }
}

function hexPair(a: number, b: number): number {
  const hi = a < 128 ? HEX[a] : -1
  const lo = b < 128 ? HEX[b] : -1
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo
}

/**
 * Checks the query part target[start, end) (from its "?"). The query is forwarded untouched, but a
 * raw control character, space or "#" never belongs in a request-target (RFC 3986 §3.4, §3.5).
 */
export function checkQuery(target: string, start: number): Rejection | undefined {
  for (let i = start; i < target.length; i++) {
    const c = target.charCodeAt(i)
    if (c <= 0x20 || c === 0x7f) return REJECTIONS.control_char
    if (c === 0x23) return REJECTIONS.fragment
  }
  return undefined
}
