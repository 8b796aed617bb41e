import { CONCURRENCY_RETRY_MS } from './store.js'

/**
 * The Redis side of the store: one Lua script, run with EVALSHA (ioredis falls back to EVAL on
 * NOSCRIPT, which also caches it again after a Redis restart or SCRIPT FLUSH). Redis runs a
 * script atomically, so all checks of a request are decided together, in one round trip, with
 * nobody else's writes in between: this is what makes the limit exact across gateway instances.
 *
 * The script mirrors gcra.ts, quota.ts and failure-score.ts line for line; store.contract.ts runs
 * the same behavioural suite against both. Every key it writes gets a PEXPIRE, so idle keys
 * leave Redis on their own.
 *
 * Time: ARGV[2] is the caller's clock in ms, or "" to read Redis TIME inside the script (allowed
 * since Redis 5 with effect replication, the only mode since 7). Integers travel as decimal
 * strings formatted with %.0f: Lua 5.1 tostring() would print 1.7e+15 and lose digits.
 *
 *   mode "check": KEYS = one per check; ARGV[3..] = per check, its kind and parameters:
 *       r iv burst | q limit period(h|d|m) | c limit leaseMs leaseId | g count iv thr lockAfter lockMs base max
 *     → { allowed(1|0), deniedIndex(0-based | -1), retryMs, nowMs, then per check: remaining, resetMs, retryMs, flags }
 *   mode "fail": KEYS = failure keys; ARGV[3..8] = iv thr lockAfter lockMs base max
 *     → per key: score, retryMs, flags          flags: 1 = locked, 2 = newly locked
 */
export const LIMITS_LUA = `
local mode = ARGV[1]
local nowus
if ARGV[2] ~= '' then
  nowus = tonumber(ARGV[2]) * 1000
else
  local t = redis.call('TIME')
  nowus = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local nowms = math.floor(nowus / 1000)

local HOUR = 3600000
local DAY = 86400000
local function f(x) return string.format('%.0f', x) end
-- Expiry times are floored at one second: state kept a little past its reset reads exactly like no
-- state (a window check or an elapsed TAT), while a TTL of a few ms could drop a key between two
-- calls when the deciding clock (the gateway's, or an injected one) and Redis's disagree slightly.
local function ttlf(x) if x < 1000 then x = 1000 end return string.format('%.0f', x) end

-- Howard Hinnant's civil calendar algorithms (proleptic Gregorian, UTC).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = m + 9
  if m > 2 then mp = m - 3 end
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end
local function civil_from_days(z)
  z = z + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local m = mp - 9
  if mp < 10 then m = mp + 3 end
  if m <= 2 then y = y + 1 end
  return y, m
end
local function window(period)
  if period == 'h' then
    local s = math.floor(nowms / HOUR) * HOUR
    return s, s + HOUR
  elseif period == 'd' then
    local s = math.floor(nowms / DAY) * DAY
    return s, s + DAY
  end
  local y, m = civil_from_days(math.floor(nowms / DAY))
  local ny, nm = y, m + 1
  if m == 12 then ny, nm = y + 1, 1 end
  return days_from_civil(y, m, 1) * DAY, days_from_civil(ny, nm, 1) * DAY
end

local function penalize(t, u, l, iv, thr, after, lockms, base, maxd)
  local b = t
  if b < nowus then b = nowus end
  local nt = b + iv
  local cap = nowus + after * iv
  if nt > cap then nt = cap end
  local score = math.ceil((nt - nowus) / iv)
  local nu, nl = 0, 0
  if u > nowms then nu, nl = u, l end
  local newly = 0
  if score >= after then
    if nl ~= 1 then newly = 1 end
    nl = 1
    if nowms + lockms > nu then nu = nowms + lockms end
  elseif score > thr then
    local d = base * 2 ^ (score - thr - 1)
    if d > maxd then d = maxd end
    if nowms + d > nu then nu = nowms + d end
  end
  return nt, nu, nl, score, newly
end
local function save_failure(key, nt, nu, nl)
  local ttl = math.ceil((nt - nowus) / 1000)
  if nu - nowms > ttl then ttl = nu - nowms end
  redis.call('HSET', key, 't', f(nt), 'u', f(nu), 'l', nl)
  redis.call('PEXPIRE', key, ttlf(ttl))
end
local function num(v) return tonumber(v) or 0 end

if mode == 'fail' then
  local iv, thr, after = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
  local lockms, base, maxd = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
  local out = {}
  for i = 1, #KEYS do
    local h = redis.call('HMGET', KEYS[i], 't', 'u', 'l')
    local nt, nu, nl, score, newly = penalize(num(h[1]), num(h[2]), num(h[3]), iv, thr, after, lockms, base, maxd)
    save_failure(KEYS[i], nt, nu, nl)
    local retry = 0
    local flags = 0
    if nu > nowms then retry = nu - nowms; flags = nl end
    out[#out + 1] = score
    out[#out + 1] = retry
    out[#out + 1] = flags + 2 * newly
  end
  return out
end

-- mode "check". Phase 1 evaluates every check and writes nothing (except dropping expired
-- concurrency leases, which changes no decision); phase 2 writes only if all admitted.
local n = #KEYS
local res = {}
local pk, pa, pb, pc = {}, {}, {}, {}
local a = 3
local denied, retry = -1, 0
for i = 1, n do
  local key = KEYS[i]
  local kind = ARGV[a]
  local rem, reset, wait, flags = 0, 0, 0, 0
  if kind == 'r' then
    local iv, burst = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local tat = tonumber(redis.call('GET', key) or '0')
    if tat < nowus then tat = nowus end
    local ntat = tat + iv
    local allow_at = ntat - burst * iv
    if nowus < allow_at then
      reset = math.ceil((tat - nowus) / 1000)
      wait = math.ceil((allow_at - nowus) / 1000)
    else
      rem = math.floor((nowus - allow_at) / iv)
      reset = math.ceil((ntat - nowus) / 1000)
      pk[i], pa[i], pb[i] = 'r', ntat, reset
    end
  elseif kind == 'q' then
    local limit, period = tonumber(ARGV[a + 1]), ARGV[a + 2]
    a = a + 3
    local ws, we = window(period)
    local h = redis.call('HMGET', key, 'w', 'n')
    local used = 0
    if h[1] and tonumber(h[1]) == ws then used = num(h[2]) end
    reset = we - nowms
    if used >= limit then
      wait = reset
    else
      rem = limit - used - 1
      pk[i], pa[i], pb[i], pc[i] = 'q', ws, used + 1, reset
    end
  elseif kind == 'c' then
    local limit, lease, id = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), ARGV[a + 3]
    a = a + 4
    redis.call('ZREMRANGEBYSCORE', key, '-inf', f(nowms))
    local used = redis.call('ZCARD', key)
    if used >= limit then
      wait = ${CONCURRENCY_RETRY_MS}
    else
      rem = limit - used - 1
      pk[i], pa[i], pb[i], pc[i] = 'c', nowms + lease, lease, id
    end
  else -- 'g'
    local count = ARGV[a + 1]
    local iv, thr, after = tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])
    local lockms, base, maxd = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6]), tonumber(ARGV[a + 7])
    a = a + 8
    local h = redis.call('HMGET', key, 't', 'u', 'l')
    local u = num(h[2])
    if u > nowms then
      local l = num(h[3])
      wait, flags = u - nowms, l
      if count == '1' then
        local nt, nu, nl, score, newly = penalize(num(h[1]), u, l, iv, thr, after, lockms, base, maxd)
        wait, flags = nu - nowms, nl + 2 * newly
        pk[i], pa[i], pb[i], pc[i] = 'g', nt, nu, nl
      end
      reset = wait
    end
  end
  res[i] = { rem, reset, wait, flags }
  if wait > 0 and (denied == -1 or wait > retry) then
    denied, retry = i - 1, wait
  end
end

local allowed = 1
if denied ~= -1 then allowed = 0 end
for i = 1, n do
  local kind = pk[i]
  if kind == 'g' then
    save_failure(KEYS[i], pa[i], pb[i], pc[i])
  elseif allowed == 1 and kind == 'r' then
    redis.call('SET', KEYS[i], f(pa[i]), 'PX', ttlf(pb[i]))
  elseif allowed == 1 and kind == 'q' then
    redis.call('HSET', KEYS[i], 'w', f(pa[i]), 'n', f(pb[i]))
    redis.call('PEXPIRE', KEYS[i], ttlf(pc[i]))
  elseif allowed == 1 and kind == 'c' then
    redis.call('ZADD', KEYS[i], f(pa[i]), pc[i])
    redis.call('PEXPIRE', KEYS[i], ttlf(pb[i]))
  end
end

local out = { allowed, denied, retry, nowms }
for i = 1, n do
  local r = res[i]
  out[#out + 1] = r[1]
  out[#out + 1] = r[2]
  out[#out + 1] = r[3]
  out[#out + 1] = r[4]
end
return out
`
