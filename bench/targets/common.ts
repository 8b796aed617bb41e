import { fileURLToPath } from 'node:url'

/** The path every row requests; the gateway route and the Fastify proxy prefix match it. */
export const BENCH_PATH = '/api/bench/items'

/** Built file of a bench child script (this module lives in dist/bench/targets/ once built). */
export const benchScript = (name: string): string => fileURLToPath(new URL(`../${name}`, import.meta.url))

/** The CLI as a user runs it. */
export const gatewayCli = (): string => fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

/** Children print {"listening": url} once they accept connections. */
export const listeningUrl = (line: Record<string, unknown>): string | undefined =>
  typeof line.listening === 'string' ? line.listening : undefined

/** The gateway logs {"msg":"listening","urls":[...]} once it accepts connections. */
export const gatewayListeningUrl = (line: Record<string, unknown>): string | undefined =>
  line.msg === 'listening' && Array.isArray(line.urls) ? String(line.urls[0]) : undefined
