// Child process: the upstream every target forwards to. A minimal node:http server answering a
// small JSON body, plus two control endpoints the bench parent calls between runs:
//   POST /__bench/row?id=ROW   → requests from now on are counted in bucket ROW (created if new)
//   GET  /__bench/stats?id=ROW → { requests, distinctAuthorization, missingAuthorization } of ROW
// Rows take turns (one row under load at a time), so switching the bucket before each run
// attributes every request to its row, across the interleaved rounds of a run.
// Counting distinct Authorization values is how the bench proves that the cold-cache row really
// sent a token never seen before on every request (the gateway forwards Authorization by default).
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'

const BODY = Buffer.from(JSON.stringify({ ok: true, service: 'bench-upstream', items: [1, 2, 3] }))
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) }

// Distinct Authorization values are told apart by their last 12 characters: for a JWS, 72 bits of
// its signature, which differs between any two tokens signed over different contents (RSA PKCS#1
// v1.5 and EdDSA are deterministic). Keeping the whole ~800-character value of each of the cold
// row's 100,000 tokens cost this process several µs per request (hashing, a growing heap), CPU
// the row's server then lost on the shared cores. A short slice is a copy in V8 (no reference to
// the whole header value). A collision could only undercount, which makes the cold row invalid,
// never valid by mistake.
const SEEN_CHARS = 12

interface Bucket {
  requests: number
  missing: number
  readonly seen: Set<string>
}
const newBucket = (): Bucket => ({ requests: 0, missing: 0, seen: new Set() })
const buckets = new Map<string, Bucket>()
let current = newBucket()

const server = createServer((req, res) => {
  const url = req.url ?? '/'
  if (url.startsWith('/__bench/')) {
    const { pathname, searchParams } = new URL(url, 'http://upstream')
    const id = searchParams.get('id') ?? ''
    let bucket = buckets.get(id)
    if (!bucket) buckets.set(id, (bucket = newBucket()))
    if (pathname === '/__bench/row') current = bucket
    const stats = JSON.stringify({ requests: bucket.requests, distinctAuthorization: bucket.seen.size, missingAuthorization: bucket.missing })
    res.writeHead(200, { 'content-type': 'application/json' }).end(stats)
    return
  }
  const b = current
  b.requests++
  const auth = req.headers.authorization
  if (auth) b.seen.add(auth.slice(-SEEN_CHARS))
  else b.missing++
  // GET requests carry no body; resume() drains any that does, so the socket can be reused.
  req.resume()
  res.writeHead(200, HEADERS).end(BODY)
})
// Outlive the proxies' pool idle timeouts so runs do not pay for reconnects.
server.keepAliveTimeout = 65_000

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo
  process.stdout.write(JSON.stringify({ listening: `http://127.0.0.1:${port}` }) + '\n')
})
process.once('SIGTERM', () => {
  server.closeAllConnections()
  server.close(() => process.exit(0))
})
