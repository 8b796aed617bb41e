import { connect, createServer } from 'node:net'
import { once } from 'node:events'

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

/**
 * Writes `parts` on a new connection to `url`'s port, a short pause after each (so the gateway
 * reads them apart), and resolves with every byte it answered once the connection closed. After
 * the parts the client's side is left open (`wait`, the default), ended (`end`) or dropped
 * (`leave`); `waitMs` bounds the wait for the close, after which the connection is dropped.
 */
export async function rawExchange(
  url: string,
  parts: ReadonlyArray<string | Buffer>,
  options: { readonly then?: 'wait' | 'end' | 'leave'; readonly waitMs?: number } = {},
): Promise<Buffer> {
  const { hostname, port } = new URL(url)
  const socket = connect(Number(port), hostname)
  socket.on('error', () => {})
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  const closed = once(socket, 'close')
  for (const part of parts) {
    socket.write(part)
    await new Promise((r) => setTimeout(r, 50))
  }
  if (options.then === 'end') socket.end()
  else if (options.then === 'leave') socket.destroy()
  await (options.waitMs === undefined ? closed : Promise.race([closed, new Promise((r) => setTimeout(r, options.waitMs))]))
  socket.destroy()
  return Buffer.concat(chunks)
}
