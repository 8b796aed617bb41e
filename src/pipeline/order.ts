/**
 * The order of the request pipeline, as one array of slots. Config can shape each stage's policy
 * but cannot reorder or drop stages. normalize comes first so that everything after it, routing
 * included, sees one canonical path. The limits stage runs twice: before authn for what needs no
 * identity (per-IP and per-route limits, brute-force lockouts, so an attacker is stopped before
 * the gateway spends a signature verification on it) and after authn for per-client limits.
 * forward is last and answers the client.
 */
export const STAGE_ORDER = [
  'normalize',
  'route',
  'sanitize',
  'limits:beforeAuthn',
  'authn',
  'limits:afterAuthn',
  'authz',
  'forward',
] as const

export type StageSlot = (typeof STAGE_ORDER)[number]
