import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/**
 * The quick start's demo service: answers with what it received, so a newcomer can see the
 * canonical path and the identity headers the gateway forwarded (and that spoofed ones are gone).
 */
export async function startDemoUpstream(options: { host?: string; port?: number; name?: string } = {}): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const seen: Record<string, string | string[] | undefined> = {}
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith('x-') || k === 'traceparent') seen[k] = v
    }
    const body = JSON.stringify({ service: options.name ?? 'demo', method: req.method, path: req.url, headers: seen }, null, 2) + '\n'
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
  await new Promise<void>((r) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', r))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server }
}
