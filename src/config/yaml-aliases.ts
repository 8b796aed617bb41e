import { isAlias, isMap, isPair, isScalar, isSeq, visit, type Alias, type Document, type Node } from 'yaml'
import { pointerSegment } from './env-refs.js'

/**
 * Turns a parsed YAML document into plain data, with its aliases (`*name`) checked first so a bad
 * one is a located config error instead of an exception out of the yaml library:
 *
 * - an alias with no anchor (`&name`) before it;
 * - an alias inside the node it refers to (the data would contain itself, and every later step
 *   that walks it would recurse forever);
 * - aliases that blow the document up ("billion laughs"): the size and depth of the data once
 *   every alias is expanded are bounded, because resolving references, validating and freezing
 *   all walk the expanded tree.
 *
 * The yaml library's own guard (maxAliasCount, 100 by default) counts uses of one anchor, which
 * refuses an ordinary route table that reuses one anchor a hundred times (a generator such as
 * PyYAML writes every shared list that way) while costing nothing compared to writing it out.
 * What hurts is expansion, so that is what is bounded. The library also resolves each alias by
 * scanning every anchor and alias before it (quadratic: 60,000 aliases take half a minute), so
 * each alias is replaced by its node here, found in one pass, before the conversion.
 */
export interface AliasIssue {
  /** JSON pointer of the offending node in the document as written. */
  readonly path: string
  /** Source offset of the node, for its line and column. */
  readonly offset: number | undefined
  readonly message: string
}

/** Values (scalars, mappings, lists, keys included) in the expanded document. */
export const MAX_EXPANDED_VALUES = 1_000_000
/** Nesting of the expanded document; a real config is less than a dozen levels deep. */
export const MAX_DEPTH = 64

interface Shape {
  readonly size: number
  readonly depth: number
}

/** Where an alias sits, so it can be swapped for its node and back. */
interface Slot {
  readonly parent: { key: unknown; value: unknown } | { items: unknown[] }
  readonly key: 'key' | 'value' | number
  readonly alias: Alias
}

class Stop extends Error {}

export interface DocumentData {
  /** The plain data; undefined when there are issues. */
  readonly value: unknown
  readonly issues: readonly AliasIssue[]
  /** The node each alias refers to (undefined: no anchor before it). */
  readonly aliases: ReadonlyMap<Alias, Node | undefined>
}

export function documentData(doc: Document): DocumentData {
  const issues: AliasIssue[] = []
  const offset = (node: Node | null | undefined) => node?.range?.[0]
  const keyText = (key: unknown) => (isScalar(key) ? String(key.value) : String(key))

  // The node each alias refers to: the last node with that anchor before the alias, in the order
  // the yaml library itself resolves them (Alias.resolve).
  const targets = new Map<Alias, Node | undefined>()
  const slots: Slot[] = []
  const anchors = new Map<string, Node>()
  visit(doc, {
    Node: (key, node, path) => {
      if (isAlias(node)) {
        targets.set(node, anchors.get(node.source))
        const parent = path[path.length - 1]
        if (isPair(parent) && (key === 'key' || key === 'value')) slots.push({ parent, key, alias: node })
        else if (isSeq(parent) && typeof key === 'number') slots.push({ parent, key, alias: node })
      } else if (node.anchor) {
        anchors.set(node.anchor, node)
      }
    },
  })

  // Size and depth of a node with its aliases expanded. `open` holds the nodes being measured,
  // to step over an alias inside its own target; `level` keeps this recursion itself bounded.
  const memo = new Map<Node, Shape>()
  const open = new Set<Node>()
  const measure = (node: Node | null | undefined, level: number): Shape => {
    if (!node) return { size: 1, depth: 0 }
    if (level > MAX_DEPTH) return { size: 1, depth: Infinity }
    if (isAlias(node)) {
      const target = targets.get(node)
      // Unresolved or self-containing aliases are reported where the document is walked.
      if (!target || open.has(target)) return { size: 1, depth: 0 }
      return measure(target, level)
    }
    const known = memo.get(node)
    if (known) return known
    let size = 1
    let depth = 0
    const add = (child: unknown) => {
      const s = measure(child as Node | null, level + 1)
      size = Math.min(size + s.size, Number.MAX_SAFE_INTEGER)
      depth = Math.max(depth, s.depth + 1)
    }
    open.add(node)
    if (isMap(node)) {
      for (const pair of node.items) {
        add(pair.key)
        add(pair.value)
      }
    } else if (isSeq(node)) {
      for (const item of node.items) add(item)
    }
    open.delete(node)
    const shape = { size, depth }
    memo.set(node, shape)
    return shape
  }

  // The document as written, in order, counting what each alias expands to, so a bound passed is
  // reported at the alias that passed it. `inside` holds the anchored nodes around the current one.
  let expanded = 0
  const inside = new Set<Node>()
  const stop = (path: string, node: Node | null | undefined, message: string): never => {
    issues.push({ path: path || '/', offset: offset(node), message })
    throw new Stop()
  }
  const walk = (node: Node | null | undefined, path: string, depth: number): void => {
    if (depth > MAX_DEPTH) stop(path, node, `the document is nested more than ${MAX_DEPTH} levels deep`)
    if (!node) {
      expanded++
      return
    }
    if (isAlias(node)) {
      const target = targets.get(node)
      const name = node.source
      expanded++
      if (!target) {
        issues.push({ path: path || '/', offset: offset(node), message: `YAML alias "*${name}" has no anchor "&${name}" before it (an anchor must be defined before its aliases)` })
      } else if (inside.has(target)) {
        issues.push({ path: path || '/', offset: offset(node), message: `YAML alias "*${name}" is inside the node anchored as "&${name}": the data would contain itself` })
      } else {
        const s = measure(target, 0)
        expanded += s.size - 1
        if (depth + s.depth > MAX_DEPTH) stop(path, node, `YAML alias "*${name}" nests the document more than ${MAX_DEPTH} levels deep`)
        if (expanded > MAX_EXPANDED_VALUES) {
          stop(path, node, `YAML aliases expand the document past ${MAX_EXPANDED_VALUES} values at "*${name}" (a guard against alias bombs); use fewer or smaller aliases`)
        }
      }
      return
    }
    expanded++
    if (expanded > MAX_EXPANDED_VALUES) stop(path, node, `the document holds more than ${MAX_EXPANDED_VALUES} values`)
    if (node.anchor) inside.add(node)
    if (isMap(node)) {
      for (const pair of node.items) {
        const seg = `${path}/${pointerSegment(keyText(pair.key))}`
        walk(pair.key as Node | null, seg, depth + 1)
        walk(pair.value as Node | null, seg, depth + 1)
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => walk(item as Node | null, `${path}/${i}`, depth + 1))
    }
    if (node.anchor) inside.delete(node)
  }

  try {
    walk(doc.contents as Node | null, '', 0)
  } catch (err) {
    if (!(err instanceof Stop)) throw err
  }
  if (issues.length) return { value: undefined, issues, aliases: targets }

  // Each alias becomes its node for the conversion (a copy instead of a shared object, which the
  // reference resolution makes anyway), then the document is put back for locating issues.
  const put = (slot: Slot, node: unknown) => {
    if ('items' in slot.parent) slot.parent.items[slot.key as number] = node
    else slot.parent[slot.key as 'key' | 'value'] = node
  }
  try {
    for (const slot of slots) put(slot, targets.get(slot.alias))
    // No alias is left for the library's own count.
    return { value: doc.toJS(), issues, aliases: targets }
  } catch (err) {
    // Merge keys (`<<`, YAML 1.1) of a non-mapping, say. The library's messages name no values.
    return { value: undefined, issues: [{ path: '/', offset: undefined, message: `YAML: ${(err as Error).message}` }], aliases: targets }
  } finally {
    for (const slot of slots) put(slot, slot.alias)
  }
}
