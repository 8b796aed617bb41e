/**
 * RateLimit and RateLimit-Policy response fields, as in draft-ietf-httpapi-ratelimit-headers-10
 * (§3, §4). Both are Structured Field Lists (RFC 9651) of Items whose value is the policy name
 * as an sf-string:
 *
 *   RateLimit-Policy: "api";q=100;w=60, "api.day";q=10000;w=86400, "api.concurrency";q=10;qu="concurrent-requests"
 *   RateLimit: "api";r=42;t=18, "api.day";r=9212;t=30512
 *
 * q = quota units per window, w = window in seconds, qu = quota unit (the default, "requests",
 * is left out), r = remaining units, t = seconds until the quota is restored. The policy field is
 * fixed per route and tier, so it is built at config load; only RateLimit is built per request.
 * Policy and tier names are limited to [A-Za-z0-9_.-] by the schema, so they need no escaping.
 */
export function policyItem(name: string, quota: number, windowSec: number | undefined, unit?: 'concurrent-requests'): string {
  let item = `"${name}";q=${quota}`
  if (windowSec !== undefined) item += `;w=${windowSec}`
  if (unit) item += `;qu="${unit}"`
  return item
}

export function limitItem(name: string, remaining: number, resetMs: number): string {
  // §4.1 t: a non-negative Integer of seconds; round up so a client never comes back early.
  return `"${name}";r=${Math.max(0, remaining)};t=${Math.max(0, Math.ceil(resetMs / 1000))}`
}

/** Retry-After in delay-seconds (RFC 9110 §10.2.3), at least 1: "0" would invite a tight retry loop. */
export function retryAfterSeconds(ms: number): string {
  return String(Math.max(1, Math.ceil(ms / 1000)))
}
