// Child process: the baseline every ratio is measured against. The least a reverse proxy can do on
// this stack: node:http in, an undici Pool out, the response body streamed back. No routing, no
// checks, no logging. Whatever the gateway costs above this is the price of its pipeline.
//   env BENCH_UPSTREAM               upstream origin (required)
//   env BENCH_UPSTREAM_CONNECTIONS   pool size (same as the gateway's, for a fair comparison)
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'

const upstream = process.env.BENCH_UPSTREAM
if (!upstream) throw new Error('BENCH_UPSTREAM is required')
const pool = new Pool(upstream, { connections: Number(process.env.BENCH_UPSTREAM_CONNECTIONS ?? 64) })

// Hop-by-hop headers (RFC 9110 §7.6.1) belong to one connection and are not forwarded; host is
// set by undici from the origin.
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host'])

function outbound(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const k in headers) {
    const v = headers[k]
    if (v !== undefined && !HOP.has(k)) out[k] = v
  }
  return out
}

const server = createServer(async (req, res) => {
  try {
    const bodyless = req.method === 'GET' || req.method === 'HEAD'
    const r = await pool.request({
      method: req.method as 'GET',
      path: req.url ?? '/',
      headers: outbound(req.headers),
      body: bodyless ? null : req,
    })
    res.writeHead(r.statusCode, outbound(r.headers as IncomingHttpHeaders))
    for await (const chunk of r.body) res.write(chunk)
    res.end()
  } catch {
    if (!res.headersSent) res.writeHead(502).end()
    else res.destroy()
  }
})

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(JSON.stringify({ listening: `http://127.0.0.1:${port}` }) + '\n')
})
process.once('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => void pool.close().finally(() => process.exit(0)))
})
