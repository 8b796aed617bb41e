import { randomBytes } from 'node:crypto'
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { parseKeySet, serializeKeySet, type KeySetDocument } from './key-set.js'

/** Owner read/write only: the file holds private keys. */
export const KEY_FILE_MODE = 0o600

/**
 * Writes a key set with mode 0600. Without `overwrite` the file must not exist yet (O_EXCL, so a
 * key set is never replaced by mistake). With it, the new content goes to a temporary file in the
 * same folder that is then renamed over the old one: a gateway reloading at that moment reads the
 * old set or the new one, never half of one, and the result is 0600 whatever the old mode was.
 */
export function writeKeySetFile(file: string, set: KeySetDocument, options: { overwrite: boolean }): void {
  const text = serializeKeySet(set)
  if (!options.overwrite) {
    writeFileSync(file, text, { mode: KEY_FILE_MODE, flag: 'wx' })
    return
  }
  const tmp = join(dirname(file), `.${basename(file)}.${randomBytes(6).toString('hex')}.tmp`)
  try {
    writeFileSync(tmp, text, { mode: KEY_FILE_MODE, flag: 'wx' })
    renameSync(tmp, file)
  } catch (err) {
    try {
      unlinkSync(tmp)
    } catch {
      // already renamed or never created
    }
    throw err
  }
}

/** Reads and checks a key set file; throws KeySetError (no key material in it) or an fs error. */
export function readKeySetFile(file: string): KeySetDocument {
  return parseKeySet(readFileSync(file, 'utf8')).document
}
