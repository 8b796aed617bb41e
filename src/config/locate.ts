import { isAlias, isMap, isScalar, isSeq, type Alias, type Document, type LineCounter, type Node } from 'yaml'
import { pointerSegment } from './env-refs.js'

export interface Position {
  readonly line: number
  readonly column: number
}

/** Splits a JSON pointer (RFC 6901) into unescaped segments. "" → []. */
export function pointerSegments(pointer: string): string[] {
  if (pointer === '' || pointer === '/') return []
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
}

/**
 * Maps a JSON pointer back to a line:column of the source, using the node ranges the yaml parser
 * keeps. When the pointer goes further than the source (a field filled in by a default, a missing
 * field), the nearest node that exists is reported, so every issue still gets a line.
 * With `key`, the last segment is a mapping key and its key is reported (unknown fields);
 * `aliases` maps each alias to its node (see documentData()).
 */
export function locate(
  doc: Document,
  lines: LineCounter,
  pointer: string,
  options: { key?: boolean; aliases?: ReadonlyMap<Alias, Node | undefined> } = {},
): Position | undefined {
  const segs = pointerSegments(pointer)
  let node: Node | null | undefined = doc.contents as Node | null
  let best: Node | undefined = node ?? undefined
  for (let i = 0; i < segs.length; i++) {
    // Alias.resolve() scans the whole document each time: with many issues behind many aliases,
    // the targets found once in advance keep this linear.
    if (isAlias(node)) node = (options.aliases ? options.aliases.get(node) : node.resolve(doc)) as Node | undefined
    const seg = segs[i]
    if (isMap(node)) {
      const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === seg)
      if (!pair) break
      const key = pair.key as Node | null
      const value = pair.value as Node | null
      if ((i === segs.length - 1 && options.key) || !hasSource(value)) {
        best = key ?? best
        node = undefined
        break
      }
      node = value
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)] as Node | undefined
      if (!item) break
      node = item
    } else {
      break
    }
    if (node) best = node
  }
  const offset = best?.range?.[0]
  if (offset === undefined) return doc.contents ? undefined : { line: 1, column: 1 }
  const p = lines.linePos(offset)
  return { line: p.line, column: p.col }
}

/** An empty scalar (`auth:` with nothing after it) has no useful position of its own. */
function hasSource(node: Node | null | undefined): node is Node {
  if (!node?.range) return false
  return !(isScalar(node) && node.value === null && node.range[0] === node.range[1])
}

/**
 * The JSON pointer of the field a YAML syntax error at `offset` lies in, from what the parser
 * built: the keys that start before the error, and a repeated key itself (`duplicateKey`). A key
 * that starts where the error does may be a value the parser mistook for a key (an inline secret),
 * so it is never part of the pointer. "" when the error is outside every field.
 */
export function pointerAt(doc: Document, offset: number, options: { duplicateKey?: boolean } = {}): string {
  const within = (n: Node | null | undefined) => {
    const r = n?.range
    return r != null && r[0] <= offset && offset < Math.max(r[1], r[2])
  }
  let node = doc.contents as Node | null | undefined
  let pointer = ''
  for (;;) {
    if (isMap(node)) {
      const pair = node.items.find((p) => {
        const key = p.key as Node | null
        if (!isScalar(key) || !key.range || (typeof key.value !== 'string' && typeof key.value !== 'number')) return false
        const start = key.range[0]
        if (start > offset || (start === offset && !options.duplicateKey)) return false
        const value = p.value as Node | null
        return start === offset || within(value) || offset < (value?.range?.[0] ?? key.range[2])
      })
      if (!pair) break
      pointer += `/${pointerSegment((pair.key as { value: string | number }).value)}`
      if (!within(pair.value as Node | null)) break
      node = pair.value as Node
    } else if (isSeq(node)) {
      const index = node.items.findIndex((item) => within(item as Node | null))
      if (index < 0) break
      pointer += `/${index}`
      node = node.items[index] as Node
    } else {
      break
    }
  }
  return pointer
}
