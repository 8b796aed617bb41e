import { readFileSync } from 'node:fs'
import { isAbsolute, resolve } from 'node:path'

/**
 * Secret references in config string values, resolved after parsing and before validation:
 *
 *   ${env:NAME}   the value of environment variable NAME
 *   ${file:PATH}  the contents of PATH, trimmed (relative paths: from the config file's folder)
 *   $${...}       a literal "${...}" (escape)
 *
 * Secrets stay out of the config file this way, and they must also stay out of every message:
 * errors name the variable or file and the JSON path, never a value. The paths whose values came
 * from a reference are reported back so later messages can redact them.
 */
export interface RefIssue {
  /** JSON pointer of the string value that holds the reference. */
  readonly path: string
  readonly message: string
  /** The issue is the key itself, not its value (locate the key). */
  readonly atKey?: boolean
}

export interface ResolvedRefs {
  /** The document with every reference replaced (a copy; the input is not changed). */
  readonly value: unknown
  readonly errors: readonly RefIssue[]
  /** Pointers whose value contains resolved (possibly secret) text: never print these values. */
  readonly resolvedPaths: ReadonlySet<string>
  /** Pointers whose whole value is exactly one reference (nothing written inline). */
  readonly wholeRefPaths: ReadonlySet<string>
}

export interface RefSources {
  readonly env: NodeJS.ProcessEnv
  /** Folder that relative ${file:} paths are read from. */
  readonly baseDir: string
}

// `$${` is the escape; otherwise `${kind:arg}`. The inner part may not contain `}`.
const REF = /(\$?)\$\{([^}]*)\}/g
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

/** Escapes one JSON pointer segment (RFC 6901 §3). */
export function pointerSegment(key: string | number): string {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1')
}

export function resolveRefs(doc: unknown, sources: RefSources): ResolvedRefs {
  const errors: RefIssue[] = []
  const resolvedPaths = new Set<string>()
  const wholeRefPaths = new Set<string>()

  const resolveString = (text: string, path: string): string => {
    if (!text.includes('${')) return text
    let resolvedAny = false
    let refs = 0
    let failed = false
    const out = text.replace(REF, (match: string, escape: string, inner: string) => {
      if (escape) return match.slice(1)
      refs++
      const colon = inner.indexOf(':')
      const kind = colon === -1 ? '' : inner.slice(0, colon)
      const arg = colon === -1 ? '' : inner.slice(colon + 1)
      if (kind === 'env') {
        if (!ENV_NAME.test(arg)) {
          errors.push({ path, message: `invalid environment variable name in "${match}"` })
          failed = true
          return match
        }
        const v = sources.env[arg]
        if (v === undefined || v === '') {
          errors.push({ path, message: `environment variable ${arg} is ${v === undefined ? 'not set' : 'empty'} (referenced as ${match})` })
          failed = true
          return match
        }
        resolvedAny = true
        return v
      }
      if (kind === 'file') {
        if (!arg) {
          errors.push({ path, message: `"${match}" names no file` })
          failed = true
          return match
        }
        const file = isAbsolute(arg) ? arg : resolve(sources.baseDir, arg)
        let content: string
        try {
          content = readFileSync(file, 'utf8').trim()
        } catch (err) {
          // The error code only: the message of some errors quotes file content positions, and the
          // path is already known to the operator.
          errors.push({ path, message: `cannot read ${match}: ${(err as NodeJS.ErrnoException).code ?? 'read error'}` })
          failed = true
          return match
        }
        if (!content) {
          errors.push({ path, message: `file referenced as ${match} is empty` })
          failed = true
          return match
        }
        resolvedAny = true
        return content
      }
      errors.push({ path, message: `unsupported reference "${match}": use \${env:NAME} or \${file:PATH} (write $\${ for a literal "\${")` })
      failed = true
      return match
    })
    if (resolvedAny || failed) resolvedPaths.add(path)
    if (refs === 1 && !failed && /^\$\{[^}]*\}$/.test(text)) wholeRefPaths.add(path)
    return out
  }

  const walk = (value: unknown, path: string): unknown => {
    if (typeof value === 'string') return resolveString(value, path)
    if (Array.isArray(value)) return value.map((v, i) => walk(v, `${path}/${i}`))
    if (value && typeof value === 'object') {
      const out: Record<string, unknown> = {}
      for (const [k, v] of Object.entries(value)) {
        const p = `${path}/${pointerSegment(k)}`
        // Assigning out["__proto__"] would set the prototype instead: its fields would pass as
        // inherited ones, unseen by the closed schema and by the redaction of resolved paths.
        // No config field has that name, so it is refused and its value left unread.
        if (k === '__proto__') {
          errors.push({ path: p, message: 'a field named "__proto__" is not allowed', atKey: true })
          continue
        }
        out[k] = walk(v, p)
      }
      return out
    }
    return value
  }

  return { value: walk(doc, ''), errors, resolvedPaths, wholeRefPaths }
}

/**
 * Shows a config value in a message unless it came from a reference, in which case only the
 * fact that it was a reference is shown: a resolved value may be a secret.
 */
export function showValue(value: unknown, path: string, resolvedPaths: ReadonlySet<string>): string {
  if (resolvedPaths.has(path)) return '(value from a ${env:}/${file:} reference)'
  return JSON.stringify(value)
}
