/**
 * The request-target sent upstream: the upstream URL's path prefix + the canonical path (with the
 * route's stripPrefix removed) + the raw query. The path was made canonical and percent-encoded by
 * normalize and is what route and authz decided on; it is sent byte for byte, never decoded or
 * re-encoded, so what was authorized is what arrives.
 */
export function upstreamPath(prefix: string, path: string, stripPrefix: string | undefined, query: string): string {
  let rest = stripPrefix === undefined ? path : stripSegments(path, stripPrefix)
  if (prefix !== '') rest = prefix + rest
  else if (rest === '') rest = '/'
  return query === '' ? rest : rest + query
}

/**
 * Removes `prefix` from `path` only when it is a whole-segment prefix: "/api" strips "/api" and
 * "/api/x" but not "/apix". Returns "" when the whole path was the prefix, so the caller can tell
 * "/api" (→ upstream prefix as is) from "/api/" (→ upstream prefix + "/").
 */
export function stripSegments(path: string, prefix: string): string {
  const p = prefix.charCodeAt(prefix.length - 1) === 47 ? prefix.slice(0, -1) : prefix
  if (p === '' || !path.startsWith(p)) return path
  if (path.length === p.length) return ''
  return path.charCodeAt(p.length) === 47 ? path.slice(p.length) : path
}

/** The upstream URL's path without trailing slashes ("" for none): prepended to every request. */
export function basePathOf(url: URL): string {
  let end = url.pathname.length
  while (end > 0 && url.pathname.charCodeAt(end - 1) === 47) end--
  return url.pathname.slice(0, end)
}
