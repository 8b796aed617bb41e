// Imported first by the CLI entry, so it runs before the rest of the module graph loads.
//
// One process.nextTick while the process is young keeps node's nextTick on its fast path for the
// life of the process. Without it, on Node 20, the first ticks come only when the listeners open,
// about half a second into start-up, and in most processes V8 then ends up building every tick
// object (`{ [async_id_symbol]: …, [trigger_async_id_symbol]: …, callback, args }`) through
// its runtime (Runtime_DefineKeyedOwnPropertyInLiteral) instead of compiled code. node's streams
// and HTTP code schedule about a dozen ticks per proxied request, so that costs 3–5 µs of CPU per
// request, 4–6% of the gateway's. Measured with V8 CPU profiles and perf; how often a process
// lands on the slow path, and the figures with and without this line: docs/benchmarks.md
// ("nextTick"). The callback does nothing; the tick is the point.
process.nextTick(() => {})
