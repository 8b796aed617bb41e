/**
 * Host-based routing: which group of routes a request's Host (or HTTP/2 `:authority`) selects.
 *
 * A route with `hosts` belongs to the group of each name it lists; a route without belongs to the
 * default group. A request is matched against one group only: the group of its exact host name,
 * else of the longest wildcard (`*.example.com`) that covers it, else the default group. A host
 * that has a group of its own never falls back to the default group's routes: every path a host
 * serves is one its own routes name (as a virtual host is in nginx or Envoy), so a catch-all
 * meant for other hosts cannot open a path on it.
 */

/** Dot-separated labels, none empty (no leading dot, no ".."). */
const PLAIN_HOST = /^(?:[a-z0-9-]+\.)*[a-z0-9-]+$/
const IPV6_HOST = /^\[[0-9a-f:.]+\]$/

/** A configured `hosts` entry in the form requests are compared in: lowercase, no trailing dot. */
export function canonicalHostName(name: string): string {
  const lower = name.toLowerCase()
  return lower.endsWith('.') ? lower.slice(0, -1) : lower
}

/**
 * A route's `hosts` as the groups it joins: each entry in canonical form, listed once. The router
 * builds its groups from this, and the config check of dead routes compares routes by it.
 */
export function routeHostGroups(hosts: readonly string[]): string[] {
  return [...new Set(hosts.map(canonicalHostName))]
}

/** requestHostName of a Host no group may take (see there). */
export const UNROUTABLE = ''

/**
 * The name a request's Host value is routed by: lowercase, without its port and without one
 * trailing dot (`API.Example.com.:8443` → `api.example.com`). Names are matched as DNS names are
 * compared (RFC 4343), so letter case and the root dot never change the group. undefined when
 * the request has no Host (HTTP/1.0): the default group.
 *
 * UNROUTABLE for a value that is not a DNS name or IP address, which no group takes, the default
 * one included: `api%2eexample.com` is api.example.com to a service that normalizes URIs (RFC
 * 3986 §6.2.2.2), so giving it the default group's routes would let a client pick which policy
 * governs a request for a host that has its own.
 */
export function requestHostName(host: string | undefined): string | undefined {
  if (host === undefined) return undefined
  let name = host
  if (name.charCodeAt(0) === 0x5b) {
    // [v6]:port
    const end = name.indexOf(']')
    if (end < 0) return UNROUTABLE
    name = name.slice(0, end + 1).toLowerCase()
    return IPV6_HOST.test(name) ? name : UNROUTABLE
  }
  const colon = name.indexOf(':')
  if (colon >= 0) name = name.slice(0, colon)
  name = canonicalHostName(name)
  return PLAIN_HOST.test(name) ? name : UNROUTABLE
}

/** A group per exact name and per wildcard, and the default group. Built once at config load. */
export class HostTable<T> {
  private readonly exact = new Map<string, T>()
  /** Wildcard groups by their suffix (`*.example.com` → `.example.com`), longest first. */
  private wildcards: Array<{ readonly suffix: string; readonly group: T }> = []

  constructor(readonly fallback: T) {}

  /** The group of a canonical entry (canonicalHostName), made with `make` the first time. */
  groupFor(entry: string, make: () => T): T {
    if (entry.startsWith('*.')) {
      const suffix = entry.slice(1)
      const found = this.wildcards.find((w) => w.suffix === suffix)
      if (found) return found.group
      const group = make()
      this.wildcards = [...this.wildcards, { suffix, group }].sort((a, b) => b.suffix.length - a.suffix.length)
      return group
    }
    let group = this.exact.get(entry)
    if (group === undefined) {
      group = make()
      this.exact.set(entry, group)
    }
    return group
  }

  /** The group a request's host selects (its value from requestHostName); undefined for UNROUTABLE. */
  select(name: string | undefined): T | undefined {
    if (name === undefined) return this.fallback
    if (name === UNROUTABLE) return undefined
    const exact = this.exact.get(name)
    if (exact !== undefined) return exact
    // A wildcard covers names with at least one more label: *.example.com is not example.com.
    for (const w of this.wildcards) if (name.length > w.suffix.length && name.endsWith(w.suffix)) return w.group
    return this.fallback
  }
}
