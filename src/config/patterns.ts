/**
 * The string patterns of the config schema, each with how an error message and the field reference
 * (docs/config.md) say it. One table, so the three cannot drift apart: a pattern edited here is
 * edited everywhere.
 */
export const PATTERNS = {
  path: { pattern: '^/', error: 'must start with "/"', doc: 'starts with /' },
  id: { pattern: '^[A-Za-z0-9_.-]+$', error: 'may contain only letters, digits, "_", "." and "-"', doc: '[A-Za-z0-9_.-]' },
  routeId: { pattern: '^[A-Za-z0-9_.:-]+$', error: 'may contain only letters, digits, "_", ".", ":" and "-"', doc: '[A-Za-z0-9_.:-]' },
  scope: {
    pattern: '^[!#-\\[\\]-~]+$',
    error: 'must be a scope token: printable ASCII without spaces, quotes or backslashes (RFC 6749 §3.3)',
    doc: 'scope token',
  },
  upstreamUrl: {
    pattern: '^https?://[^/?#@\\s]+(/[^?#\\s]*)?$',
    error: 'must be an http:// or https:// URL without credentials, query or fragment',
    doc: 'http(s) URL without credentials, query or fragment',
  },
  // Discovery and JWKS URLs: a query is allowed (some IdPs select a policy with one). fetch()
  // refuses credentials in a URL, and its error would quote the whole URL, password included.
  fetchUrl: {
    pattern: '^https?://[^/?#@\\s]+([/?#]\\S*)?$',
    error: 'must be an http:// or https:// URL without credentials (user:password@)',
    doc: 'http(s) URL without credentials',
  },
  // routes[].hosts: a DNS name (labels of letters, digits and inner hyphens, RFC 1123 §2.1), the
  // same after "*." (a wildcard), or a bracketed IPv6 address; an IPv4 address is a DNS-shaped name.
  hostName: {
    pattern: '^(?:\\*\\.)?(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.?$|^\\[[0-9A-Fa-f:.]+\\]$',
    error: 'must be a host name ("api.example.com"), a wildcard ("*.example.com") or an IP address, without a port',
    doc: 'host name, *.name or IP address',
  },
  headerName: { pattern: "^[!#$%&'+.^_`|~0-9A-Za-z-]+$", error: 'must be an HTTP header name (an RFC 9110 §5.6.2 token)', doc: 'header name' },
} as const

/** pattern → its words, for error messages ('error') or the field reference ('doc'). */
export function patternTexts(kind: 'error' | 'doc'): Readonly<Record<string, string>> {
  return Object.fromEntries(Object.values(PATTERNS).map((p) => [p.pattern, p[kind]]))
}
