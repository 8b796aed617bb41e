import type { StoreConfig } from './config.js'
import { createMemoryStore } from './memory-store.js'
import { createRedisStore } from './redis-store.js'
import { createResilientStore, type StoreEvent } from './resilient-store.js'
import type { LimitStore } from './store.js'

/**
 * limits.store → the store the stages use: the memory store, or Redis wrapped by the resilient
 * store (with a memory fallback sized by maxKeys when onStoreError is "fallback-memory").
 * Connecting to Redis happens in the background: until it is ready, requests are decided by
 * the failure policy, so a gateway starts (and stays up) without Redis.
 */
export function createLimitStore(config: StoreConfig, deps: { readonly now: () => number; readonly onStoreEvent?: (e: StoreEvent) => void }): LimitStore {
  if (config.type === 'memory') return createMemoryStore({ maxKeys: config.maxKeys })
  const r = config.redis
  if (!r) throw new Error('limits.store.type "redis" needs limits.store.redis')
  const primary = createRedisStore({
    url: r.url,
    keyPrefix: r.keyPrefix,
    commandTimeoutMs: r.commandTimeoutMs,
    connectTimeoutMs: r.connectTimeoutMs,
    clock: r.clock,
    pipelining: r.pipelining,
  })
  return createResilientStore({
    primary,
    fallback: r.onStoreError === 'fallback-memory' ? createMemoryStore({ maxKeys: config.maxKeys }) : undefined,
    onStoreError: r.onStoreError,
    probeIntervalMs: r.probeIntervalMs,
    now: deps.now,
    onEvent: deps.onStoreEvent,
  })
}
