import { patternTexts } from './patterns.js'

/**
 * Renders the field reference of docs/config.md from the JSON Schema, so the documented fields,
 * types and defaults are the ones the loader enforces (a test compares the two).
 */
type Schema = Record<string, unknown>

const PATTERN_TEXT = patternTexts('doc')

function typeText(s: Schema): string {
  if ('const' in s) return `\`${JSON.stringify(s.const)}\``
  if (Array.isArray(s.anyOf)) {
    const branches = s.anyOf as Schema[]
    if (branches.every((b) => 'const' in b)) return `one of ${branches.map((b) => `\`${String(b.const)}\``).join(', ')}`
    // Objects of one field each (routes[].certificates): name the fields; each has its own row.
    if (branches.every(singleField)) return `object with one of ${branches.map((b) => `\`${Object.keys(b.properties as Schema)[0]}\``).join(', ')}`
    return branches.map(typeText).join(' or ')
  }
  if (s.type === 'array') {
    const items = (s.items ?? {}) as Schema
    const inner = items.type === 'object' ? 'objects' : Array.isArray(items.anyOf) && (items.anyOf as Schema[]).every(singleField) ? `objects with one of ${(items.anyOf as Schema[]).map((b) => `\`${Object.keys(b.properties as Schema)[0]}\``).join(', ')}` : typeText(items)
    const min = typeof s.minItems === 'number' && s.minItems > 0 ? ` (at least ${s.minItems})` : ''
    return `list of ${inner}${min}`
  }
  const parts: string[] = []
  // A URL pattern already says "URL".
  if (s.format === 'uri' && !(typeof s.pattern === 'string' && s.pattern.startsWith('^https?://'))) parts.push('URL')
  else parts.push(String(s.type ?? 'any'))
  const min = s.minimum as number | undefined
  const max = s.maximum as number | undefined
  if (min !== undefined && max !== undefined) parts.push(`${min}–${max}`)
  else if (min !== undefined) parts.push(`≥ ${min}`)
  else if (max !== undefined) parts.push(`≤ ${max}`)
  if (typeof s.pattern === 'string') parts.push(PATTERN_TEXT[s.pattern] ?? `pattern \`${s.pattern}\``)
  return parts.join(', ')
}

const singleField = (b: Schema): boolean => b.type === 'object' && b.properties !== undefined && Object.keys(b.properties as Schema).length === 1

const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ')

function rows(s: Schema, path: string, required: boolean, out: string[]): void {
  const def = 'default' in s ? `\`${JSON.stringify(s.default)}\`` : required ? '**required**' : ''
  const description = typeof s.description === 'string' ? s.description : ''
  const props = s.properties as Record<string, Schema> | undefined
  if (props) {
    if (path) out.push(`| \`${path}\` | object | ${cell(def)} | ${cell(description)} |`)
    const req = new Set((s.required as string[] | undefined) ?? [])
    for (const [k, v] of Object.entries(props)) rows(v, path ? `${path}.${k}` : k, req.has(k), out)
    return
  }
  const items = s.items as Schema | undefined
  out.push(`| \`${path}\` | ${cell(typeText(s))} | ${cell(def)} | ${cell(description)} |`)
  if (s.type === 'array' && items?.properties) {
    const req = new Set((items.required as string[] | undefined) ?? [])
    for (const [k, v] of Object.entries(items.properties as Record<string, Schema>)) rows(v, `${path}[].${k}`, req.has(k), out)
  } else if (s.type === 'array' && Array.isArray(items?.anyOf) && (items.anyOf as Schema[]).every(singleField)) {
    // One row per alternative field; none is required on its own.
    for (const b of items.anyOf as Schema[]) for (const [k, v] of Object.entries(b.properties as Record<string, Schema>)) rows(v, `${path}[].${k}`, false, out)
  }
}

/** The markdown table of every config field: path, type, default (or required), description. */
export function fieldsTable(schema: Schema): string {
  const out = ['| Field | Type | Default | Description |', '|---|---|---|---|']
  rows(schema, '', true, out)
  return `${out.join('\n')}\n`
}
