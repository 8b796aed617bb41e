// Runs the two example services of examples/services/ (orders on node:http, users on Fastify),
// each verifying the gateway's internal tokens with @portcullis/verify:
//
//   node dist/scripts/example-services.js --gateway-issuer http://127.0.0.1:8080 \
//     --jwks-uri http://127.0.0.1:8080/.well-known/portcullis/jwks.json --orders-port 9001 --users-port 9002
//
// `npm start` starts them itself; this launcher is for running them on their own (and for the
// examples' end-to-end test). It prints one JSON line per service once it listens.
import { parseArgs } from 'node:util'
import { startOrdersService } from '../examples/services/orders.js'
import { startUsersService } from '../examples/services/users.js'
import { startOrExit } from './start-or-exit.js'

const USAGE = `Usage: node dist/scripts/example-services.js [options]

Runs the example services orders (node:http) and users (Fastify), each verifying the
gateway's internal tokens with @portcullis/verify.

Options:
  --gateway-issuer URL   iss of the gateway's tokens (default http://127.0.0.1:8080)
  --jwks-uri URL         the gateway's JWKS (default http://127.0.0.1:8080/.well-known/portcullis/jwks.json)
  --host HOST            address to listen on (default 127.0.0.1)
  --orders-port PORT     (default 9001)
  --users-port PORT      (default 9002)
  -h, --help             Show this help`

function usageError(message: string): never {
  process.stderr.write(`example-services: ${message}\n\n${USAGE}\n`)
  process.exit(2)
}

function parse() {
  try {
    return parseArgs({
      options: {
        'gateway-issuer': { type: 'string', default: 'http://127.0.0.1:8080' },
        'jwks-uri': { type: 'string', default: 'http://127.0.0.1:8080/.well-known/portcullis/jwks.json' },
        host: { type: 'string', default: '127.0.0.1' },
        'orders-port': { type: 'string', default: '9001' },
        'users-port': { type: 'string', default: '9002' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values
  } catch (err) {
    return usageError((err as Error).message)
  }
}
const values = parse()
if (values.help) {
  process.stdout.write(`${USAGE}\n`)
  process.exit(0)
}
const port = (name: 'orders-port' | 'users-port'): number => {
  const text = values[name]
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) usageError(`--${name} must be a port number (0 to 65535), not "${text}"`)
  return Number(text)
}
const ordersPort = port('orders-port')
const usersPort = port('users-port')

const common = { gatewayIssuer: values['gateway-issuer'], jwksUri: values['jwks-uri'], host: values.host }
const prefix = 'example-services: '
const orders = await startOrExit('orders', values.host, ordersPort, () => startOrdersService({ ...common, port: ordersPort }), { prefix })
const users = await startOrExit('users', values.host, usersPort, () => startUsersService({ ...common, port: usersPort }), { prefix })
process.stdout.write(`${JSON.stringify({ service: 'orders', listening: orders.url })}\n${JSON.stringify({ service: 'users', listening: users.url })}\n`)

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void Promise.all([orders.close(), users.close()]).then(() => process.exit(0))
  })
}
