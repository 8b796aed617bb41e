import { readFile } from 'node:fs/promises'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormatsModule from 'ajv-formats'
import { parseDocument } from 'yaml'
import { ConfigSchema, type Config } from './schema.js'

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
}

export type LoadResult =
  | { readonly ok: true; readonly config: Config; readonly warnings: readonly ConfigIssue[] }
  | { readonly ok: false; readonly errors: readonly ConfigIssue[] }

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => void
const ajv = new Ajv2020({ allErrors: true, useDefaults: true, strict: false })
addFormats(ajv)
const validate = ajv.compile(ConfigSchema)

/** Reads, parses, validates, applies defaults and deep-freezes a config file. */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadResult> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    return { ok: false, errors: [{ file, line: undefined, column: undefined, path: '', message: `cannot read file: ${(err as Error).message}` }] }
  }
  return loadConfigText(text, file, env)
}

export function loadConfigText(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadResult {
  const doc = parseDocument(text)
  if (doc.errors.length) {
    return {
      ok: false,
      errors: doc.errors.map((e) => ({ file, line: e.linePos?.[0].line, column: e.linePos?.[0].col, path: '', message: e.message })),
    }
  }
  const raw = doc.toJS() as unknown
  if (!validate(raw)) {
    return {
      ok: false,
      errors: (validate.errors ?? []).map((e) => ({ file, line: undefined, column: undefined, path: e.instancePath || '/', message: e.message ?? 'invalid' })),
    }
  }
  void env
  return { ok: true, config: deepFreeze(raw as Config), warnings: [] }
}

export function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const v of Object.values(value as Record<string, unknown>)) deepFreeze(v)
  }
  return value
}

/** `file:line:col  /path  message` lines, one per issue. */
export function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues
    .map((i) => {
      const where = i.line !== undefined ? `${i.file}:${i.line}:${i.column ?? 1}` : i.file
      return `${where}  ${i.path || '/'}  ${i.message}${i.rule ? `  [${i.rule}]` : ''}`
    })
    .join('\n')
}
