import { spawn } from 'node:child_process'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startDemoUpstream } from './demo-upstream.js'
import { startDevIdp } from './dev-idp.js'

/**
 * `npm start`: the gateway with examples/portcullis.yaml, a demo upstream and a local OpenID
 * provider, then a few curl lines to try. Ctrl-C stops everything.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const AUDIENCE = 'api://portcullis-demo'

const idp = await startDevIdp({
  port: 9000,
  audience: AUDIENCE,
  scopes: ['orders:read', 'orders:write'],
  clients: [
    { clientId: 'demo-reader', clientSecret: 'demo-reader-secret', scope: 'orders:read' },
    { clientId: 'demo-writer', clientSecret: 'demo-writer-secret', scope: 'orders:read orders:write' },
  ],
})
const upstream = await startDemoUpstream({ port: 9001, name: 'orders' })

const gateway = spawn(process.execPath, [join(root, 'dist', 'src', 'cli', 'main.js'), 'start', '--config', join(root, 'examples', 'portcullis.yaml')], {
  stdio: ['ignore', 'pipe', 'inherit'],
})
let banner = false
gateway.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
  process.stdout.write(chunk)
  if (!banner && chunk.includes('initial key load settled')) {
    banner = true
    printBanner()
  }
})
gateway.on('exit', (code) => {
  void idp.close()
  upstream.server.close()
  process.exit(code ?? 0)
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => gateway.kill('SIGTERM'))

function printBanner(): void {
  const token = `curl -s -u demo-reader:demo-reader-secret -d grant_type=client_credentials -d scope=orders:read ${idp.issuer}/token`
  process.stdout.write(`
──────────────────────────────────────────────────────────────────────────────
 Portcullis is running on http://127.0.0.1:8080
   identity provider (dev only): ${idp.issuer}    demo upstream: ${upstream.url}

 1. Get an access token (client demo-reader, scope orders:read):
    TOKEN=$(${token} | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')

 2. Allowed — GET /orders needs orders:read:
    curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/orders/42

 3. Denied (403 insufficient_scope) — POST /orders needs orders:write:
    curl -i -X POST -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8080/orders

 4. Denied (401) — no token, or a spoofed identity header:
    curl -i -H "X-Auth-Subject: admin" http://127.0.0.1:8080/orders/42

 Public route: curl -i http://127.0.0.1:8080/status      Stop: Ctrl-C
──────────────────────────────────────────────────────────────────────────────
`)
}
