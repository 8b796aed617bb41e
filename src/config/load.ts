import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { LineCounter, parseDocument, type Document } from 'yaml'
import { resolveRefs } from './env-refs.js'
import { judgeFindings, lintConfig } from './lint.js'
import { locate, pointerAt } from './locate.js'
import { schemaIssues } from './schema-errors.js'
import { ConfigSchema, type Config } from './schema.js'
import { semanticIssues } from './semantic.js'
import { documentData } from './yaml-aliases.js'
import { deepFreeze } from '../util/deep-freeze.js'

/** One problem found in a config file. */
export interface ConfigIssue {
  readonly file: string
  readonly line: number | undefined
  readonly column: number | undefined
  /** JSON pointer of the offending field, e.g. /routes/2/auth */
  readonly path: string
  readonly message: string
  /** Lint rule id for security findings. */
  readonly rule?: string
  /** For a lint finding reported as a warning because of security.acknowledge: the reason given. */
  readonly acknowledged?: string
}

export type LoadResult =
  | { readonly ok: true; readonly config: Config; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[]; readonly warnings?: readonly ConfigIssue[] }

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void
// verbose: errors carry their schema, which the messages need (allowed values of a union, known fields).
const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false, verbose: true })
addFormats(ajv)
const validate = ajv.compile(ConfigSchema)

/**
 * Reads, parses (YAML or JSON), resolves ${env:}/${file:} references, validates against the
 * schema, applies defaults, runs the semantic checks and the security lint, and deep-freezes.
 * Every problem comes back at once, with its line:column; nothing throws for a bad config.
 *
 * @example
 * const result = await loadConfigFile('portcullis.yaml')
 * if (!result.ok) console.error(formatIssues(result.errors))
 */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : code === 'EACCES' ? 'permission denied' : (err as Error).message
    return { ok: false, errors: [{ file, line: undefined, column: undefined, path: '', message: `cannot read config file: ${why}` }] }
  }
  return loadConfigText(text, file, env)
}

export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const lines = new LineCounter()
  // uniqueKeys (the default) makes a repeated key an error: YAML 1.2 §3.2.1.1 requires unique keys,
  // and "last one wins" would let a second `auth:` silently override the first.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true })
  if (doc.errors.length) {
    return {
      ok: false,
      errors: sortIssues(
        doc.errors.map((e) => ({
          file,
          line: e.linePos?.[0].line,
          column: e.linePos?.[0].col,
          // An unclosed quote is reported at the end of the text: it lies in the value that runs up to it.
          path: pointerAt(doc as Document, /quote/.test(e.message) ? Math.min(e.pos[0], Math.max(0, text.length - 1)) : e.pos[0], {
            duplicateKey: e.code === 'DUPLICATE_KEY',
          }),
          // The parser appends a copy of the source line; the position already says where, and the
          // line itself could hold an inline secret.
          message: `YAML syntax: ${e.message.split(/ at line \d+, column \d+/)[0].split('\n')[0]}`,
        })),
      ),
    }
  }

  const converted = documentData(doc as Document)
  const issue = (path: string, message: string, at = path, atKey = false, extra: Partial<ConfigIssue> = {}): ConfigIssue => {
    const pos = locate(doc as Document, lines, at, { key: atKey, aliases: converted.aliases })
    return { file, line: pos?.line, column: pos?.column, path: path || '/', message, ...extra }
  }
  if (converted.issues.length) {
    return {
      ok: false,
      errors: sortIssues(
        converted.issues.map((a) => {
          const pos = a.offset === undefined ? undefined : lines.linePos(a.offset)
          return { file, line: pos?.line, column: pos?.col, path: a.path, message: a.message }
        }),
      ),
    }
  }
  const refs = resolveRefs(converted.value, { env, baseDir: dirname(resolve(file)) })
  const errors: ConfigIssue[] = refs.errors.map((e) => issue(e.path, e.message, e.path, e.atKey === true))
  const refFailed = new Set(refs.errors.map((e) => e.path))

  const data = refs.value
  if (!validate(data)) {
    for (const s of schemaIssues(validate.errors ?? [])) {
      // A value whose reference did not resolve was already reported; its shape says nothing.
      if (refFailed.has(s.path)) continue
      errors.push(issue(s.path, s.message, s.at, s.atKey))
    }
    return { ok: false, errors: sortIssues(errors) }
  }
  if (errors.length) return { ok: false, errors: sortIssues(errors) }

  const config = data as Config
  for (const s of semanticIssues(config, refs.resolvedPaths)) errors.push(issue(s.path, s.message))

  const verdict = judgeFindings(lintConfig(config, { wholeRefPaths: refs.wholeRefPaths }), config.security.acknowledge)
  for (const f of verdict.errors) errors.push(issue(f.path, f.message, f.path, false, { rule: f.rule }))
  const warnings: ConfigIssue[] = verdict.warnings.map((f) =>
    issue(f.path, f.message, f.path, false, f.acknowledged === undefined ? { rule: f.rule } : { rule: f.rule, acknowledged: f.acknowledged }),
  )
  for (const a of verdict.ackIssues) {
    const p = `/security/acknowledge/${a.index}/${a.field}`
    ;(a.level === 'error' ? errors : warnings).push(issue(p, a.message))
  }

  if (errors.length) return { ok: false, errors: sortIssues(errors), warnings: sortIssues(warnings) }
  return { ok: true, config: deepFreeze(config), warnings: sortIssues(warnings) }
}

/** By line, then column, then path; issues without a line last. Duplicates removed. */
function sortIssues(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>()
  return issues
    .filter((i) => {
      const key = `${i.path}\u0000${i.message}\u0000${i.rule ?? ''}`
      if (seen.has(key)) return false
      seen.add(key)
      return true
    })
    .sort((a, b) => (a.line ?? Infinity) - (b.line ?? Infinity) || (a.column ?? 0) - (b.column ?? 0) || a.path.localeCompare(b.path))
}

/**
 * `file:line:col  /path  message  [rule]` lines, one per issue. With `label` ("warning"), each line
 * starts with it. Messages never contain resolved reference values, so this is safe to print.
 */
export function formatIssues(issues: readonly ConfigIssue[], label?: string): string {
  return issues
    .map((i) => {
      const where = i.line !== undefined ? `${i.file}:${i.line}:${i.column ?? 1}` : i.file
      const ack = i.acknowledged !== undefined ? ` (acknowledged: ${i.acknowledged})` : ''
      return `${label ? `${label}: ` : ''}${where}  ${i.path || '/'}  ${i.message}${i.rule ? `  [${i.rule}]` : ''}${ack}`
    })
    .join('\n')
}
