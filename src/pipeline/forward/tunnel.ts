import type { Socket } from 'node:net'
import type { Http2Stream } from 'node:http2'

/** Why a WebSocket tunnel closed: the `reason` of its `websocket.closed` event. */
export type TunnelCloseReason =
  | 'client_closed'
  | 'upstream_closed'
  | 'client_error'
  | 'upstream_error'
  | 'idle_timeout'
  | 'credential_expired'
  | 'shutdown'

/** The error a draining listener destroys a tunnel's client connection with (http/server.ts). */
export const TUNNEL_SHUTDOWN = 'PORTCULLIS_SHUTDOWN'

export interface TunnelOptions {
  /** Closed after this long without a byte in either direction. */
  readonly idleTimeoutMs: number
  /** Epoch ms at which the credential that opened the tunnel expires (closed then), or undefined (a public route). */
  readonly closeAt: number | undefined
  readonly now: () => number
  /** Called once the tunnel is open; onClosed follows exactly once. */
  readonly onOpened?: () => void
  readonly onClosed: (closed: { readonly reason: TunnelCloseReason; readonly durationMs: number; readonly bytesFromClient: number; readonly bytesFromUpstream: number }) => void
}

/** setTimeout's largest delay (about 24.8 days); a later deadline is reached in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Joins the client's connection to the upstream's once the upstream answered 101: bytes flow both
 * ways as they are (the gateway reads no WebSocket frame), with backpressure on each side (pipe).
 * The first reason either side goes away closes both, once. Authorization was decided at the
 * handshake, so the tunnel must not outlive what it was granted on: it closes when the token (or
 * client certificate) that opened it expires, and after idleTimeoutMs without traffic, however
 * long the client keeps it open otherwise. A client that wants to go on reconnects, and its new
 * handshake is checked afresh.
 */
export function openTunnel(client: Socket | Http2Stream, upstream: Socket, head: Buffer, o: TunnelOptions): void {
  o.onOpened?.()
  const openedAt = performance.now()
  // An HTTP/2 stream (RFC 8441) has no byte counter of its own: its DATA is counted as it comes.
  const stream = !('bytesRead' in client)
  let streamBytes = 0
  if (stream) client.on('data', (chunk: Buffer) => (streamBytes += chunk.length))
  const clientBytesBefore = stream ? 0 : client.bytesRead
  let reason: TunnelCloseReason | undefined
  let expiry: NodeJS.Timeout | undefined
  let reported = false

  const close = (why: TunnelCloseReason): void => {
    if (reason === undefined) reason = why
    client.destroy()
    upstream.destroy()
  }
  const report = (): void => {
    if (reported || !client.destroyed || !upstream.destroyed) return
    reported = true
    if (expiry !== undefined) clearTimeout(expiry)
    o.onClosed({
      reason: reason ?? 'client_closed',
      durationMs: Math.round(performance.now() - openedAt),
      bytesFromClient: (stream ? streamBytes : (client as Socket).bytesRead - clientBytesBefore) + head.length,
      bytesFromUpstream: upstream.bytesRead,
    })
  }

  // The listener's handshake timer (http/server.ts) gives way to the tunnel's own.
  client.removeAllListeners('timeout')
  client.setTimeout(o.idleTimeoutMs, () => close('idle_timeout'))
  upstream.setTimeout(o.idleTimeoutMs, () => close('idle_timeout'))
  client.on('error', (err: NodeJS.ErrnoException) => close(err.code === TUNNEL_SHUTDOWN ? 'shutdown' : 'client_error'))
  upstream.on('error', () => close('upstream_error'))
  client.on('close', () => {
    close('client_closed')
    report()
  })
  upstream.on('close', () => {
    close('upstream_closed')
    report()
  })

  if (o.closeAt !== undefined) {
    const arm = (): void => {
      const left = o.closeAt! - o.now()
      if (left <= 0) close('credential_expired')
      else expiry = setTimeout(arm, Math.min(left, MAX_TIMER_MS))
    }
    arm()
  }
  if (reason !== undefined) return
  // What the client sent right behind its handshake belongs to the tunnel.
  if (head.length > 0) upstream.write(head)
  upstream.pipe(client)
  client.pipe(upstream)
}
