// The broken HTTP/2 upstream of `FUZZ_UPSTREAM=http2 npm run fuzz:upstream`: the raw HTTP/2
// upstream of the tests (test/helpers/raw-h2-upstream.ts), answering `POST /p/<id>` (body: the id)
// as the id's seed picks: mostly honestly (`[id=<id>]`), else with frames out of order or against
// the rules.
import type { Server } from 'node:net'
import { CONTINUATION, DATA, END_HEADERS, END_STREAM, frame, GOAWAY, headerBlock, HEADERS, PING, PUSH_PROMISE, RST_STREAM, SETTINGS, u32, WINDOW_UPDATE } from '../test/helpers/h2-frames.js'
import { startRawHttp2Upstream } from '../test/helpers/raw-h2-upstream.js'
import { seededRandom } from '../test/helpers/seeded.js'

const settings = (pairs: Array<[number, number]>): Buffer => Buffer.concat(pairs.map(([id, value]) => Buffer.concat([Buffer.from([id >> 8, id & 0xff]), u32(value)])))

/** The frames that answer stream `sid`, which asked for `id`; 'close' ends the connection after them. */
function answer(sid: number, id: string, random: (n: number) => number): { frames: Buffer[]; close?: boolean } {
  const body = Buffer.from(`[id=${id}]`)
  const poison = Buffer.from(`POISON-${id}`)
  const head = (status = '200', more: Array<[string, string]> = []) => headerBlock([[':status', status], ['content-type', 'text/plain'], ...more])
  const honest = [frame(HEADERS, END_HEADERS, sid, head()), frame(DATA, END_STREAM, sid, body)]
  switch (random(3) > 0 ? 0 : 1 + random(21)) {
    case 0:
      return { frames: honest }
    case 1: // the body in two frames, then trailers
      return { frames: [frame(HEADERS, END_HEADERS, sid, head()), frame(DATA, 0, sid, body.subarray(0, 3)), frame(DATA, 0, sid, body.subarray(3)), frame(HEADERS, END_HEADERS | END_STREAM, sid, headerBlock([['x-trailer', '1']]))] }
    case 2: // DATA before any HEADERS
      return { frames: [frame(DATA, 0, sid, poison), ...honest] }
    case 3: // no :status
      return { frames: [frame(HEADERS, END_HEADERS, sid, headerBlock([['content-type', 'text/plain']])), frame(DATA, END_STREAM, sid, poison)] }
    case 4: // a connection-specific field (RFC 9113 §8.2.2: malformed)
      return { frames: [frame(HEADERS, END_HEADERS, sid, head('200', [['connection', 'keep-alive']])), frame(DATA, END_STREAM, sid, poison)] }
    case 5: // a head, then the stream reset
      return { frames: [frame(HEADERS, END_HEADERS, sid, head()), frame(RST_STREAM, 0, sid, u32(random(14)))] }
    case 6: // GOAWAY that leaves this stream unprocessed, then the connection closes
      return { frames: [frame(GOAWAY, 0, 0, Buffer.concat([u32(Math.max(0, sid - 2)), u32(random(14))]))], close: true }
    case 7: // more DATA on the stream after it ended
      return { frames: [...honest, frame(DATA, END_STREAM, sid, poison)] }
    case 8: // an answer on a stream the gateway never opened, then the honest one
      return { frames: [frame(HEADERS, END_HEADERS, sid + 2 * (1 + random(3)), head()), frame(DATA, END_STREAM, sid + 2, poison), ...honest] }
    case 9: // a PUSH_PROMISE, which a client that disabled push must treat as a connection error
      return { frames: [frame(PUSH_PROMISE, END_HEADERS, sid, Buffer.concat([u32(sid + 1), headerBlock([[':method', 'GET'], [':path', '/x'], [':scheme', 'http'], [':authority', 'a']])])), ...honest] }
    case 10: // flow-control windows pushed past 2^31-1, or a zero increment
      return { frames: [frame(WINDOW_UPDATE, 0, random(2) === 0 ? 0 : sid, u32(random(2) === 0 ? 0 : 0x7fffffff)), frame(WINDOW_UPDATE, 0, 0, u32(0x7fffffff)), ...honest] }
    case 11: // settings out of range
      return { frames: [frame(SETTINGS, 0, 0, settings([[random(2) === 0 ? 2 : 4, random(2) === 0 ? 2 : 0x80000000], [5, 100]])), ...honest] }
    case 12: // a ping flood
      return { frames: [...Array.from({ length: 2000 }, () => frame(PING, 0, 0, Buffer.alloc(8))), ...honest] }
    case 13: // a head that never ends: CONTINUATION after CONTINUATION
      return { frames: [frame(HEADERS, 0, sid, head()), ...Array.from({ length: 3000 }, () => frame(CONTINUATION, 0, sid, headerBlock([['x-more', 'a'.repeat(50)]])))] }
    case 14: // a 100 KiB head
      return { frames: [frame(HEADERS, 0, sid, head()), frame(CONTINUATION, END_HEADERS, sid, headerBlock([['x-big', 'a'.repeat(100 * 1024)]])), frame(DATA, END_STREAM, sid, poison)] }
    case 15: // a frame of unknown type, which must be ignored
      return { frames: [frame(0xfa, 0, sid, Buffer.alloc(10)), ...honest] }
    case 16: // a Content-Length the DATA does not match
      return { frames: [frame(HEADERS, END_HEADERS, sid, head('200', [['content-length', '3']])), frame(DATA, END_STREAM, sid, Buffer.concat([body, poison]))] }
    case 17: // nothing at all: the gateway's headersTimeoutMs ends it
      return { frames: [] }
    case 18: // an interim answer first
      return { frames: [frame(HEADERS, END_HEADERS, sid, headerBlock([[':status', '103'], ['link', '</a>; rel=preload']])), ...honest] }
    case 19: // 101, which HTTP/2 has no use for
      return { frames: [frame(HEADERS, END_HEADERS, sid, head('101')), frame(DATA, END_STREAM, sid, poison)] }
    case 20: // a padded DATA frame whose pad length does not fit
      return { frames: [frame(HEADERS, END_HEADERS, sid, head()), frame(DATA, 0x8 | END_STREAM, sid, Buffer.concat([Buffer.from([200]), poison]))] }
    default: // the connection dropped after the head
      return { frames: [frame(HEADERS, END_HEADERS, sid, head())], close: true }
  }
}

/** Starts the upstream on a free loopback port; resolves with its URL and the server. */
export function startBrokenHttp2Upstream(): Promise<{ url: string; server: Server }> {
  return startRawHttp2Upstream((sid, id) => (/^\d+$/.test(id) ? answer(sid, id, seededRandom(Number(id))) : { frames: [], close: true }))
}
