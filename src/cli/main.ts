#!/usr/bin/env node
// PLACEHOLDER CLI: minimal `start --config FILE`. To be replaced by the full CLI.
import { parseArgs } from 'node:util'
import { start } from '../main.js'

const { positionals, values } = parseArgs({ allowPositionals: true, options: { config: { type: 'string', short: 'c' }, watch: { type: 'boolean' } } })
if (positionals[0] === 'start' && values.config) {
  start({ configPath: values.config, watch: values.watch }).catch((err: Error & { exitCode?: number }) => {
    if (!err.exitCode) console.error(err)
    process.exit(err.exitCode ?? 1)
  })
} else {
  console.error('usage: portcullis start --config FILE')
  process.exit(2)
}
