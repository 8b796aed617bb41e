/**
 * Hop-by-hop header fields: they describe one connection, not the message, so an intermediary
 * consumes them and never relays them (RFC 9110 §7.6.1). Used in both directions: inbound by
 * sanitize, on the upstream response by forward.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection', // not standard, but sent by old clients and meant for one hop only
  'te', // inbound, `te: trailers` is put back by sanitize (RFC 9110 §10.1.4)
  'trailer',
  'transfer-encoding', // framing is redone on each connection (RFC 9112 §6.1)
  'upgrade',
  'proxy-authorization', // credentials for a proxy, not for the origin (RFC 9110 §11.7.2)
  'proxy-authenticate',
])

/** Headers a Connection field may never remove: the framing the gateway already parsed. */
const NOT_REMOVABLE: ReadonlySet<string> = new Set(['content-length'])

/**
 * The extra header names a Connection field lists (RFC 9110 §7.6.1: "a proxy or gateway MUST
 * parse a received Connection header field before a message is forwarded and, for each
 * connection-option in this field, remove any header or trailer field(s) from the message with
 * the same name"). Returns undefined for the common `keep-alive` / `close` so the hot path does not
 * allocate; names are lowercase.
 */
export function connectionListed(value: string | string[] | undefined): string[] | undefined {
  if (value === undefined) return undefined
  const text = typeof value === 'string' ? value : value.join(',')
  if (text.length <= 10) {
    const lower = text.toLowerCase()
    if (lower === 'keep-alive' || lower === 'close' || lower === '') return undefined
  }
  let listed: string[] | undefined
  for (const token of text.split(',')) {
    const name = token.trim().toLowerCase()
    if (name === '' || HOP_BY_HOP.has(name) || NOT_REMOVABLE.has(name) || name === 'close') continue
    ;(listed ??= []).push(name)
  }
  return listed
}
