import type { Config } from './config/schema.js'
import { createClientAddressResolver, type ClientAddressResolver } from './http/client-address.js'
import { createAuthnStage } from './pipeline/authn/index.js'
import { createAuthzStage } from './pipeline/authz/index.js'
import { createForwardStage } from './pipeline/forward/index.js'
import { createNormalizeStage } from './pipeline/normalize/index.js'
import { STAGE_ORDER } from './pipeline/order.js'
import { createRouteStage } from './pipeline/route/index.js'
import { createPipeline, type Pipeline } from './pipeline/run.js'
import { createSanitizeStage } from './pipeline/sanitize/index.js'
import type { Deps, RequestContext, Stage, StageName } from './pipeline/stage.js'

/** One loaded configuration, built into a pipeline. A reload builds a new one and swaps it in. */
export interface Gateway {
  readonly config: Config
  readonly pipeline: Pipeline
  readonly resolveClient: ClientAddressResolver
  /** Loads keys; resolves when every issuer's first load settled (success or failure). */
  start(): Promise<void>
  /** True when every issuer has keys and upstreams are configured. */
  ready(): boolean
  close(): Promise<void>
}

export interface GatewayOptions {
  readonly onDone?: (ctx: RequestContext) => void
}

/** The composition root: builds each stage from config, in the order of order.ts. */
export function createGateway(config: Config, deps: Deps, options: GatewayOptions = {}): Gateway {
  const resolveClient = createClientAddressResolver(config.server.trustedProxies)
  const authn = createAuthnStage(config, deps)
  const forward = createForwardStage(config, deps)
  const byName: Record<StageName, Stage> = {
    normalize: createNormalizeStage(config, deps),
    route: createRouteStage(config),
    sanitize: createSanitizeStage(config, deps, resolveClient),
    authn,
    authz: createAuthzStage(),
    forward,
  }
  const stages = STAGE_ORDER.map((name) => byName[name])
  const pipeline = createPipeline(stages, deps, { realm: config.server.realm, onDone: options.onDone })
  return {
    config,
    pipeline,
    resolveClient,
    start: () => authn.start(),
    ready: () => config.upstreams.length > 0 && authn.ready(),
    async close() {
      await Promise.allSettled(stages.map((s) => s.close?.()))
    },
  }
}
