import { isIPv6 } from 'node:net'

/**
 * X-Forwarded-For for the upstream. Only a trusted proxy's chain is kept (and extended with the
 * proxy's own address); from anyone else the header is replaced by the peer address, because a
 * client can write any chain it likes and upstreams tend to believe its first entry.
 */
export function forwardedFor(existing: string | string[] | undefined, peer: string, trusted: boolean): string {
  if (!trusted || existing === undefined) return peer
  const chain = typeof existing === 'string' ? existing : existing.join(', ')
  return chain.trim() === '' ? peer : `${chain}, ${peer}`
}

/** X-Forwarded-Proto: a trusted proxy's single `http`/`https` value, else the listener's own scheme. */
export function forwardedProto(existing: string | string[] | undefined, trusted: boolean, own: string): string {
  if (!trusted || typeof existing !== 'string') return own
  const v = existing.trim().toLowerCase()
  return v === 'https' || v === 'http' ? v : own
}

/**
 * Appends this hop to a trusted proxy's RFC 7239 Forwarded header. An IPv6 node is bracketed and
 * quoted (RFC 7239 §6).
 */
export function appendForwarded(existing: string | string[], peer: string): string {
  const chain = typeof existing === 'string' ? existing : existing.join(', ')
  const node = isIPv6(peer) ? `"[${peer}]"` : peer
  return chain.trim() === '' ? `for=${node}` : `${chain}, for=${node}`
}
