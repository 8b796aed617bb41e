import type { StageName } from './stage.js'

/**
 * The order of the request pipeline, as one array. Config can shape each stage's policy but cannot
 * reorder or drop stages. normalize comes first so that everything after it, routing included,
 * sees one canonical path; forward is last and answers the client.
 */
export const STAGE_ORDER: readonly StageName[] = ['normalize', 'route', 'sanitize', 'authn', 'authz', 'forward']
