import { execFileSync, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startOrdersService } from '../examples/services/orders.js'
import { startUsersService } from '../examples/services/users.js'
import { startDevIdp } from './dev-idp.js'
import { startOrExit, type Closable } from './start-or-exit.js'

/**
 * `npm start`: the gateway with examples/portcullis.yaml, a local OpenID provider, and the two
 * example services (orders, users) that verify the gateway's internal tokens themselves with
 * @portcullis/verify; then a few curl lines to try. Ctrl-C stops everything.
 */
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const cli = join(root, 'dist', 'src', 'cli', 'main.js')
const AUDIENCE = 'api://portcullis-demo'
const GATEWAY = 'http://127.0.0.1:8080'
// internalTokens.issuer and jwksPath in examples/portcullis.yaml.
const GATEWAY_ISSUER = GATEWAY
const JWKS_URI = `${GATEWAY}/.well-known/portcullis/jwks.json`

// A demo signing key set, generated now with the real command and never written to the
// repository: it lives in a private temporary folder just long enough to be read, then only in
// the gateway's environment (examples/portcullis.yaml reads it from PORTCULLIS_DEMO_SIGNING_KEYS).
const keysDir = mkdtempSync(join(tmpdir(), 'portcullis-demo-'))
let signingKeys: string
try {
  execFileSync(process.execPath, [cli, 'keys', 'generate', '--out', join(keysDir, 'signing-keys.json')], { stdio: 'ignore' })
  signingKeys = readFileSync(join(keysDir, 'signing-keys.json'), 'utf8')
} finally {
  rmSync(keysDir, { recursive: true, force: true })
}

// A port already taken is said plainly, like the gateway's own listeners, and whatever started
// already is stopped again.
const started: Closable[] = []
const starting = <T extends Closable>(what: string, port: number, start: () => Promise<T>) =>
  startOrExit(what, '127.0.0.1', port, start, { hint: '; stop what uses it, then run npm start again', started })

const idp = await starting('dev identity provider', 9000, () => startDevIdp({
  port: 9000,
  audience: AUDIENCE,
  scopes: ['orders:read', 'orders:write', 'users:read'],
  clients: [
    { clientId: 'demo-reader', clientSecret: 'demo-reader-secret', scope: 'orders:read users:read' },
    { clientId: 'demo-writer', clientSecret: 'demo-writer-secret', scope: 'orders:read orders:write users:read' },
  ],
}))
const orders = await starting('orders example service', 9001, () => startOrdersService({ port: 9001, gatewayIssuer: GATEWAY_ISSUER, jwksUri: JWKS_URI }))
const users = await starting('users example service', 9002, () => startUsersService({ port: 9002, gatewayIssuer: GATEWAY_ISSUER, jwksUri: JWKS_URI }))

const gateway = spawn(process.execPath, [cli, 'start', '--config', join(root, 'examples', 'portcullis.yaml')], {
  stdio: ['ignore', 'pipe', 'inherit'],
  env: { ...process.env, PORTCULLIS_DEMO_SIGNING_KEYS: signingKeys },
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
  void Promise.allSettled([idp.close(), orders.close(), users.close()]).then(() => process.exit(code ?? 0))
})
for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => gateway.kill('SIGTERM'))

function printBanner(): void {
  const token = `curl -s -u demo-reader:demo-reader-secret -d grant_type=client_credentials -d scope='orders:read users:read' ${idp.issuer}/token`
  process.stdout.write(`
──────────────────────────────────────────────────────────────────────────────
 Portcullis is running on ${GATEWAY}
   identity provider (dev only): ${idp.issuer}
   services: orders ${orders.url}, users ${users.url} (each verifies the gateway's token)

 1. Get an access token (client demo-reader, scopes orders:read users:read):
    TOKEN=$(${token} | node -pe 'JSON.parse(require("fs").readFileSync(0)).access_token')

 2. Allowed — client → gateway (verifies your token, checks orders:read) → orders
    (verifies the internal token the gateway minted for it):
    curl -i -H "Authorization: Bearer $TOKEN" ${GATEWAY}/orders/42
    curl -i -H "Authorization: Bearer $TOKEN" ${GATEWAY}/users/me

 3. Denied (403 insufficient_scope) — POST /orders needs orders:write:
    curl -i -X POST -H "Authorization: Bearer $TOKEN" ${GATEWAY}/orders

 4. Denied (401) — no token, or a spoofed identity header:
    curl -i -H "X-Auth-Subject: admin" ${GATEWAY}/orders/42

 5. Denied (401) by the service itself — going around the gateway, even with your token:
    curl -i -H "Authorization: Bearer $TOKEN" ${orders.url}/orders/42

 Public route: curl -i ${GATEWAY}/status    Gateway keys: curl -s ${JWKS_URI}
 Stop: Ctrl-C
──────────────────────────────────────────────────────────────────────────────
`)
}
