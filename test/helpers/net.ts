import { createServer } from 'node:net'

/** A loopback port with nothing listening on it (bound, read, closed): for a server to start on, or a refused upstream. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}
