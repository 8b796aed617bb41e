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

const { values } = parseArgs({
  options: {
    'gateway-issuer': { type: 'string', default: 'http://127.0.0.1:8080' },
    'jwks-uri': { type: 'string', default: 'http://127.0.0.1:8080/.well-known/portcullis/jwks.json' },
    host: { type: 'string', default: '127.0.0.1' },
    'orders-port': { type: 'string', default: '9001' },
    'users-port': { type: 'string', default: '9002' },
  },
  strict: true,
})

const common = { gatewayIssuer: values['gateway-issuer'], jwksUri: values['jwks-uri'], host: values.host }
const orders = await startOrdersService({ ...common, port: Number(values['orders-port']) })
const users = await startUsersService({ ...common, port: Number(values['users-port']) })
process.stdout.write(`${JSON.stringify({ service: 'orders', listening: orders.url })}\n${JSON.stringify({ service: 'users', listening: users.url })}\n`)

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void Promise.all([orders.close(), users.close()]).then(() => process.exit(0))
  })
}
