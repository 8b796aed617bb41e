import { BlockList, isIPv4, isIPv6 } from 'node:net'

/**
 * Resolves the client address. X-Forwarded-For is only believed when the TCP peer is a trusted
 * proxy, and then only up to the first untrusted hop, read right to left: every hop left of an
 * untrusted one could have been written by the client itself.
 */
export interface ClientAddressResolver {
  (peer: string, xff: string | string[] | undefined): string
  readonly trusts: (address: string) => boolean
}

/** IPv4-mapped IPv6 from dual-stack sockets (::ffff:192.0.2.1) → plain IPv4; anything else as it is. */
export function normalizeIp(ip: string): string {
  // IPv4-mapped IPv6 from dual-stack sockets: compare as plain IPv4.
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip
}

export function parseTrustedProxies(entries: readonly string[]): BlockList {
  const list = new BlockList()
  for (const entry of entries) {
    const parts = entry.split('/')
    const [addr, bits] = parts
    const type = isIPv6(addr) ? 'ipv6' : 'ipv4'
    if (parts.length > 2 || (!isIPv4(addr) && !isIPv6(addr))) throw new Error(`not an IP address or CIDR: ${entry}`)
    if (bits === undefined) {
      list.addAddress(addr, type)
      continue
    }
    // Strict prefix length: "10.0.0.0/" must not silently become /0 (trust everyone).
    const prefix = /^\d{1,3}$/.test(bits) ? Number(bits) : NaN
    if (!(prefix >= 0 && prefix <= (type === 'ipv6' ? 128 : 32))) throw new Error(`not an IP address or CIDR: ${entry}`)
    list.addSubnet(addr, prefix, type)
  }
  return list
}

export function createClientAddressResolver(trustedProxies: readonly string[]): ClientAddressResolver {
  const list = parseTrustedProxies(trustedProxies)
  const none = trustedProxies.length === 0
  const trusts = (address: string): boolean => {
    if (none) return false
    const ip = normalizeIp(address)
    return list.check(ip, isIPv6(ip) ? 'ipv6' : 'ipv4')
  }
  const resolve = ((peer: string, xff: string | string[] | undefined): string => {
    const peerIp = normalizeIp(peer)
    if (none || xff === undefined || !trusts(peerIp)) return peerIp
    const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',')
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = normalizeIp(hops[i].trim())
      if (!isIPv4(hop) && !isIPv6(hop)) return peerIp // garbage in the chain: trust nothing from it
      if (!trusts(hop)) return hop
    }
    return normalizeIp(hops[0].trim())
  }) as ClientAddressResolver
  Object.defineProperty(resolve, 'trusts', { value: trusts })
  return resolve
}
