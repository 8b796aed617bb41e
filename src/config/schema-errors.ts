import { patternTexts } from './patterns.js'
import type { ErrorObject } from 'ajv'
import { pointerSegment } from './env-refs.js'

/**
 * Turns ajv's errors into messages a person can act on. ajv reports a union of literals as one
 * "must be equal to constant" per branch plus "must match a schema in anyOf"; that collapses into
 * one "must be one of: …". Unknown and missing fields name the field (the pointer goes to it).
 * Messages are built from the schema only, never from the value, so a resolved secret cannot leak
 * into one.
 */
export interface SchemaIssue {
  /** JSON pointer of the bad (or missing / unknown) field. */
  readonly path: string
  readonly message: string
  /** Pointer to locate in the source: the object for a missing field, the key for an unknown one. */
  readonly at: string
  readonly atKey: boolean
}

type Schema = Record<string, unknown>

/** Patterns of the schema, said in words (patterns.ts). Anything else falls back to the pattern itself. */
const PATTERN_WORDS = patternTexts('error')

function patternWords(pattern: string): string {
  const known = PATTERN_WORDS[pattern]
  if (known) return known
  return `must match the pattern ${pattern}`
}

const FORMAT_WORDS: Record<string, string> = { uri: 'must be a URL', 'uri-reference': 'must be a URL or a path' }

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
  array: 'a list',
  object: 'an object (a mapping of fields)',
  null: 'null',
}

function literal(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v)
}

/** "a, b or c" */
function orList(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`
}

function describeBranch(s: Schema): string {
  if ('const' in s) return literal(s.const)
  if (Array.isArray(s.enum)) return orList(s.enum.map(literal))
  if (typeof s.type === 'string') return TYPE_WORDS[s.type] ?? s.type
  return 'a value of another shape'
}

function unionMessage(branches: readonly Schema[]): string {
  if (branches.every((b) => 'const' in b)) return `must be one of: ${branches.map((b) => literal(b.const)).join(', ')}`
  return `must be ${orList(branches.map(describeBranch))}`
}

/** Small edit distance, for "did you mean" on misspelt field names. */
function distance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)])
  for (let j = 1; j <= b.length; j++) d[0][j] = j
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1].toLowerCase() === b[j - 1].toLowerCase() ? 0 : 1))
    }
  }
  return d[a.length][b.length]
}

/** `, did you mean "x"?` for the closest candidate within two edits, or "". */
export function didYouMean(name: string, candidates: readonly string[]): string {
  const close = candidates.map((a) => [a, distance(name, a)] as const).filter(([, n]) => n <= 2).sort((x, y) => x[1] - y[1])[0]
  return close ? `, did you mean "${close[0]}"?` : ''
}

function unknownField(name: string, parent: Schema | undefined): string {
  const allowed = Object.keys((parent?.properties as Schema | undefined) ?? {})
  // A map with free keys (tier names): the key is wrong, say how.
  const keyPatterns = Object.keys((parent?.patternProperties as Schema | undefined) ?? {})
  if (!allowed.length && keyPatterns.length) return `invalid name "${name}": ${keyPatterns.map(patternWords).join(', or ')}`
  if (!allowed.length) return `unknown field "${name}"`
  const hint = didYouMean(name, allowed)
  return `unknown field "${name}"${hint} (allowed: ${allowed.join(', ')})`
}

function message(e: ErrorObject): string {
  const p = e.params as Record<string, unknown>
  switch (e.keyword) {
    case 'required':
      return `missing required field "${String(p.missingProperty)}"`
    case 'additionalProperties':
      return unknownField(String(p.additionalProperty), e.parentSchema as Schema | undefined)
    case 'anyOf':
    case 'oneOf':
      return Array.isArray(e.schema) ? unionMessage(e.schema as Schema[]) : 'does not match any allowed shape'
    case 'const':
      return `must be ${literal(p.allowedValue)}`
    case 'enum':
      return `must be one of: ${(p.allowedValues as unknown[]).map(literal).join(', ')}`
    case 'type':
      return `must be ${String(p.type)
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t)
        .join(' or ')}`
    case 'format':
      return FORMAT_WORDS[String(p.format)] ?? `must be a valid ${String(p.format)}`
    case 'pattern':
      return patternWords(String(p.pattern))
    case 'minItems':
      return p.limit === 1 ? 'must not be empty' : `must have at least ${String(p.limit)} items`
    case 'maxItems':
      return `must have at most ${String(p.limit)} items`
    case 'minLength':
      return p.limit === 1 ? 'must not be empty' : `must be at least ${String(p.limit)} characters long`
    case 'maxLength':
      return `must be at most ${String(p.limit)} characters long`
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `must be ${String(p.comparison)} ${String(p.limit)}`
    case 'uniqueItems':
      return `must not contain duplicates (items ${String(p.j)} and ${String(p.i)} are equal)`
    default:
      return e.message ?? 'is invalid'
  }
}

/** ajv errors (compiled with allErrors and verbose) → deduplicated human issues. */
export function schemaIssues(errors: readonly ErrorObject[]): SchemaIssue[] {
  // A union's own error replaces the noise of its branches at the same value.
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf')
  const isBranchNoise = (e: ErrorObject): boolean =>
    unions.some((u) => u !== e && e.schemaPath.startsWith(u.schemaPath + '/') && e.instancePath === u.instancePath)
  // "not a URL" adds nothing when the pattern already says which URL is wanted.
  const patternAt = new Set(errors.filter((e) => e.keyword === 'pattern').map((e) => e.instancePath))

  const out: SchemaIssue[] = []
  const seen = new Set<string>()
  for (const e of errors) {
    if (isBranchNoise(e)) continue
    if (e.keyword === 'format' && patternAt.has(e.instancePath)) continue
    const p = e.params as Record<string, unknown>
    let path = e.instancePath
    let at = e.instancePath
    let atKey = false
    if (e.keyword === 'required') {
      path = `${e.instancePath}/${pointerSegment(String(p.missingProperty))}`
    } else if (e.keyword === 'additionalProperties') {
      path = `${e.instancePath}/${pointerSegment(String(p.additionalProperty))}`
      at = path
      atKey = true
    }
    const issue = { path: path || '/', message: message(e), at, atKey }
    const key = `${issue.path}\u0000${issue.message}`
    if (seen.has(key)) continue
    seen.add(key)
    out.push(issue)
  }
  return out
}
