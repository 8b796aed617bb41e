import type { RequestContext } from '../pipeline/stage.js'
import { loggedPath } from './logged-path.js'

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
  // Three values cannot hold a quote, backslash or control character, so they are quoted as they
  // are: the request id (a client's only when it matched [A-Za-z0-9._:-]{8,128}, else a UUID), the
  // method (node's parser accepts only its fixed list of method names) and the route id (the
  // config schema's pattern). Paths, addresses and identity values are checked: plain printable
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
    const durationMs = Math.round((performance.now() - ctx.startedAt) * 100) / 100
    dest.write(
      `{"level":30,"time":"${lastIso}","name":"access","requestId":"${ctx.id}","traceId":"${ctx.traceId}","method":"${ctx.method}","path":${str(loggedPath(ctx))},"route":${ctx.route === undefined ? 'null' : `"${ctx.route.id}"`},"status":${ctx.status || ctx.res.statusCode},"durationMs":${durationMs},"upstreamMs":${ctx.upstreamMs ?? 'null'},"clientIp":${str(ctx.clientIp)},"subject":${str(id?.subject)},"clientId":${str(id?.clientId)}}\n`,
    )
  }
}
