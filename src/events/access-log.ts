import type { RequestContext } from '../pipeline/stage.js'
import { loggedPath } from './logged-path.js'

/**
 * `String(Math.round(ms * 100) / 100)`, the text of a duration in milliseconds to two decimals,
 * without turning a fraction into text: V8 does that through its runtime (Runtime_NumberToStringSlow,
 * seen in perf profiles of the warm benchmark at two numbers per access-log line), while integers
 * come from its number-string cache. The shortest text of the double nearest to n/100 is n/100
 * written with at most two decimals, so the two agree (access-log.test.ts checks every value to
 * 20 s and beyond).
 */
export function millisText(ms: number): string {
  const c = Math.round(ms * 100)
  // Negative, NaN or beyond 2^31 (a clock gone wrong, 248 days): the plain way.
  if (!(c >= 0 && c < 2147483648)) return String(c / 100)
  const whole = (c / 100) | 0
  const frac = c - whole * 100
  if (frac === 0) return `${whole}`
  if (frac % 10 === 0) return `${whole}.${frac / 10}`
  return `${whole}.${frac < 10 ? '0' : ''}${frac}`
}

/** Writes one access-log line per request. */
export type AccessLog = (ctx: RequestContext) => void

/**
 * The access log is the one line written for every request, so it is serialized here, with its
 * fields known in advance, instead of through pino's generic object walk (which cost about 7% of
 * the gateway's CPU per request in the warm benchmark profile). The line has pino's shape
 * (level, time, name) so one log pipeline reads all three loggers. Values that come from outside
 * (subject, client id, path) go through JSON.stringify, so they cannot break the line. The path is
 * the one request events name (loggedPath): canonical, or as sent when normalize refused it.
 */
export function createAccessLog(dest: { write(line: string): boolean }): AccessLog {
  let lastMs = 0
  let lastIso = ''
  // Four values cannot hold a quote, backslash or control character, so they are quoted as they
  // are: the request id (a client's only when it matched [A-Za-z0-9._:-]{8,128}, else a UUID), the
  // method (node's parser accepts only its fixed list of method names; HTTP/2 method tokens are
  // checked by nghttp2), the HTTP version (digits and a dot, as node writes it) and the route id
  // (the config schema's pattern). Paths, addresses and identity values are checked: plain printable
  // ASCII without quote or backslash is quoted as it is, anything else goes through JSON.stringify.
  const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/
  const str = (v: string | undefined) => (v === undefined ? 'null' : PLAIN.test(v) ? `"${v}"` : JSON.stringify(v))
  return (ctx) => {
    const now = Date.now()
    if (now !== lastMs) {
      lastMs = now
      lastIso = new Date(now).toISOString()
    }
    const id = ctx.identity
    const durationMs = millisText(performance.now() - ctx.startedAt)
    const upstreamMs = ctx.upstreamMs === undefined ? 'null' : millisText(ctx.upstreamMs)
    dest.write(
      `{"level":30,"time":"${lastIso}","name":"access","requestId":"${ctx.id}","traceId":"${ctx.traceId}","method":"${ctx.method}","httpVersion":"${ctx.req.httpVersion}","path":${str(loggedPath(ctx))},"route":${ctx.route === undefined ? 'null' : `"${ctx.route.id}"`},"status":${ctx.status || ctx.res.statusCode},"durationMs":${durationMs},"upstreamMs":${upstreamMs},"clientIp":${str(ctx.clientIp)},"subject":${str(id?.subject)},"clientId":${str(id?.clientId)}}\n`,
    )
  }
}
