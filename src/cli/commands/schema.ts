import { fieldsTable } from '../../config/fields-doc.js'
import { jsonSchema } from '../../config/schema.js'
import { EXIT_OK, parseCommand, usageError, type Command } from '../command.js'

type Json = Record<string, unknown>

/**
 * A field with a default is filled in by the loader before `required` is checked, so a file may
 * omit it. TypeBox still lists it as required; an editor would then flag a file the gateway accepts.
 */
function withoutDefaultedRequired(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutDefaultedRequired)
  if (!node || typeof node !== 'object') return node
  const out: Json = {}
  for (const [k, v] of Object.entries(node as Json)) out[k] = withoutDefaultedRequired(v)
  const props = out.properties as Record<string, Json> | undefined
  if (Array.isArray(out.required) && props) {
    const required = (out.required as string[]).filter((name) => !(props[name] && 'default' in props[name]))
    if (required.length) out.required = required
    else delete out.required
  }
  return out
}

/** The JSON Schema of the config file, as committed in schema/portcullis.schema.json. */
export function schemaDocument(): Json {
  // The loader validates with ajv's draft 2020-12 dialect; say so for editors.
  return { $schema: 'https://json-schema.org/draft/2020-12/schema', ...(withoutDefaultedRequired(jsonSchema()) as Json) }
}

export const schema: Command = {
  name: 'schema',
  summary: 'Print the JSON Schema of the config file',
  usage: `Usage: portcullis schema [options]

Prints the JSON Schema of the config file (generated from the schema the
gateway validates with). Editors use it for completion and checks.

Options:
  --markdown   Print the field reference table of docs/config.md instead
  -h, --help   Show this help`,
  async run(argv, io) {
    const parsed = parseCommand(schema, argv, io, { markdown: { type: 'boolean' } })
    if (typeof parsed === 'number') return parsed
    if (parsed.positionals.length) return usageError(schema, io, `unexpected argument "${parsed.positionals[0]}"`)
    io.out(parsed.values.markdown ? fieldsTable(schemaDocument()) : `${JSON.stringify(schemaDocument(), null, 2)}\n`)
    return EXIT_OK
  },
}
