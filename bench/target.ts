import type { BenchIssuer } from './keys.js'
import type { LoadResult, LoadSpec } from './load.js'

/**
 * A row of the benchmark table. Adding a row (rate limiting, internal tokens, ...) means writing
 * one Target and listing it in targets/index.ts; run.ts and report.ts need no change.
 */
export interface Target {
  /** Stable id, used in checks and in the JSON output. */
  readonly id: string
  /** Row label in the table. */
  readonly label: string
  /** The row every ratio is computed against (the bare proxy). Exactly one target has it. */
  readonly baseline?: boolean
  /** Draws on ctx.coldTokens (signing that pool takes a while, so it is only done when needed). */
  readonly usesColdTokens?: boolean
  /** Starts the server under test (in its own process) and resolves once it can take load. */
  start(ctx: BenchContext): Promise<RunningTarget>
  /** The requests for the warm-up run, and for measured run `part.index` of `part.of` (the measured
   *  time is split into rounds interleaved with the other rows). */
  load(phase: 'warmup' | 'measure', part: { index: number; of: number }): LoadSpec
  /** The Authorization value of the one request sent before any load, which must get a 2xx. */
  probe?(): string
  /** An Authorization value that must be refused with 401 (e.g. a token whose signature was
   *  altered): proof that the row really verifies tokens. */
  refusal?(): string
  /** Extra validity checks on the measured run; each string returned is a problem. */
  verify?(run: LoadResult, upstream: UpstreamStats): string[]
  /** Targets from the issue this row must meet, as ratios to other rows of the same run. */
  readonly checks?: readonly Check[]
}

export interface RunningTarget {
  readonly url: string
  /** The server's process id, for CPU accounting. */
  readonly pid?: number
  /** Files worth a look after the run (logs), shown in the JSON output. */
  readonly files?: Record<string, string>
  /** Recent output of the process, printed when something goes wrong. */
  tail(): string
  stop(): Promise<void>
}

/** `row.metric op factor × against.metric`, e.g. warm gateway rps >= 0.9 × bare proxy rps. */
export interface Check {
  readonly label: string
  readonly metric: 'rps' | 'p99Ms'
  readonly op: '>=' | '<='
  readonly factor: number
  /** id of the other row. */
  readonly against: string
  /** Which runs compare: the saturated rounds (default), or the equal-load rounds, in which both
   *  rows are offered the same fixed request rate (bench/paced.ts). */
  readonly at?: 'saturation' | 'equal-load'
}

/** What the upstream saw during the measured run. */
export interface UpstreamStats {
  readonly requests: number
  readonly distinctAuthorization: number
  readonly missingAuthorization: number
}

/** Shared by every target of one run. */
export interface BenchContext {
  readonly upstreamUrl: string
  /** Upstream pool size, the same for every proxy so that none gets more sockets. */
  readonly upstreamConnections: number
  readonly issuer: BenchIssuer
  /** Access tokens reused across requests: verification results can be cached. */
  readonly warmTokens: readonly string[]
  /** Tokens never sent before, handed out once each. */
  readonly coldTokens: TokenPool
  /** BENCH_PUBLIC=1: gateway routes are `auth: public` (harness development without authn). */
  readonly publicRoutes: boolean
  /** Per-run scratch directory (configs, logs). */
  readonly tmpDir: string
  /** BENCH_PROFILE=1: servers under test write a V8 CPU profile into their directory on exit. */
  readonly profile: boolean
}

/** A finite pool of distinct tokens; each take() returns one never handed out before. */
export interface TokenPool {
  readonly size: number
  remaining(): number
  take(): string
  /** How many take() calls found the pool empty (and so repeated a token). */
  overdrawn(): number
}

export function tokenPool(tokens: readonly string[]): TokenPool {
  let next = 0
  let over = 0
  return {
    size: tokens.length,
    remaining: () => tokens.length - next,
    take() {
      if (next < tokens.length) return tokens[next++]
      over++
      return tokens[tokens.length - 1]
    },
    overdrawn: () => over,
  }
}

/** Cycles through a small fixed set of tokens. */
export function rotate(tokens: readonly string[]): () => string {
  let i = 0
  return () => {
    const t = tokens[i]
    i = (i + 1) % tokens.length
    return t
  }
}

export const bearer = (token: string): string => `Bearer ${token}`

/** The same token with one signature character changed: well-formed, but its signature is wrong.
 *  A middle character is changed because the last one may only carry padding bits. */
export function tamper(token: string): string {
  const at = token.lastIndexOf('.') + 10
  const c = token[at] === 'A' ? 'B' : 'A'
  return token.slice(0, at) + c + token.slice(at + 1)
}
