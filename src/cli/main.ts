#!/usr/bin/env node
// First: see early-tick.ts (ES modules evaluate in import order).
import './early-tick.js'
import { runCli } from './run.js'

// exitCode, not exit(): pending output is flushed, and a started gateway keeps the process alive.
void runCli(process.argv.slice(2), {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
  env: process.env,
  cwd: process.cwd(),
}).then((code) => {
  process.exitCode = code
})
