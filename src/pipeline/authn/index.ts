// PLACEHOLDER: to be replaced by the real JWT authentication stage.
import type { Config } from '../../config/schema.js'
import { GatewayError } from '../../errors/gateway-error.js'
import type { Deps, RequestContext, Stage } from '../stage.js'

export interface AuthnStage extends Stage {
  /** Loads discovery documents and keys for every issuer; resolves when the first load settled. */
  start(): Promise<void>
  ready(): boolean
  close(): Promise<void>
}

export function createAuthnStage(_config: Config, _deps: Deps): AuthnStage {
  return {
    name: 'authn',
    onRequest(ctx: RequestContext): void {
      if (ctx.route?.auth === 'public') return
      throw new GatewayError('ERR_AUTHN_MISSING')
    },
    start: async () => {},
    ready: () => true,
    close: async () => {},
  }
}
