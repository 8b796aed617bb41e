import type { RequestContext } from '../pipeline/stage.js'

/** How much of a raw request-target a log line keeps. */
const MAX_RAW_PATH = 256

// Absolute-form (RFC 9112 §3.2.2): scheme "://" authority, where the authority may begin with
// user info ("user:password@"), a credential. The authority ends at the first "/", "?" or "#".
const ABSOLUTE_FORM = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^/?#]*)/

/**
 * The path a request event or access-log line names: the canonical path once normalize set it;
 * for a request refused before that, the request-target as sent, without its query (a token put
 * in the query never reaches a log) and without the user info of an absolute-form target (a
 * password never does either), cut at 256 characters.
 */
export function loggedPath(ctx: Pick<RequestContext, 'path' | 'req'>): string {
  if (ctx.path) return ctx.path
  const url = ctx.req.url ?? ''
  const q = url.indexOf('?')
  let path = q === -1 ? url : url.slice(0, q)
  const m = ABSOLUTE_FORM.exec(path)
  if (m !== null) {
    const at = m[2].lastIndexOf('@')
    if (at !== -1) path = m[1] + path.slice(m[1].length + at + 1)
  }
  return path.length > MAX_RAW_PATH ? path.slice(0, MAX_RAW_PATH) + '…' : path
}
