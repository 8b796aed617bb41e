import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generate } from 'selfsigned'

/** Certificates for the TLS tests, made with selfsigned (node-forge): 2048-bit RSA keys, PEM. */

/** A self-signed certificate for 127.0.0.1 and localhost, with its key, in PEM. */
export async function certificate(commonName: string): Promise<{ cert: string; key: string }> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keySize: 2048,
    notAfterDate: new Date(Date.now() + 2 * 86_400_000),
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  })
  return { cert: pems.cert, key: pems.private }
}

/** A certificate (chain) and its private key, in PEM. */
export type Pems = { cert: string; key: string }

/** A certificate authority with its key, in PEM: self-signed, or an intermediate that `issuer` issued. */
export async function certificateAuthority(commonName: string, issuer?: Pems): Promise<Pems> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keySize: 2048,
    ...(issuer === undefined ? {} : { ca: { key: issuer.key, cert: issuer.cert } }),
    extensions: [{ name: 'basicConstraints', cA: true, critical: true }, { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true }],
  })
  return { cert: pems.cert, key: pems.private }
}

/** A certificate `issuer` issued, with these subjectAltNames (type 2: DNS, 6: URI), and its key; valid for a year unless `notAfter` says otherwise. */
export async function issuedBy(issuer: Pems, commonName: string, altNames: Array<{ type: 2 | 6; value: string }> = [], notAfter?: Date): Promise<Pems> {
  const pems = await generate([{ name: 'commonName', value: commonName }], {
    keySize: 2048,
    ...(notAfter === undefined ? {} : { notAfterDate: notAfter }),
    ca: { key: issuer.key, cert: issuer.cert },
    extensions: altNames.length ? [{ name: 'subjectAltName', altNames }] : [],
  })
  return { cert: pems.cert, key: pems.private }
}

/**
 * A temporary directory with a TLS listener's files, as a config's ${file:} references name them:
 * cert.pem and key.pem (self-signed for localhost and 127.0.0.1, as `certificate` makes them) and,
 * with `clientCa`, client-ca.pem, a CA for client certificates (`issuedBy(ca, …)`).
 */
export async function listenerFiles(prefix: string, options: { commonName?: string; clientCa?: boolean } = {}): Promise<{ dir: string; server: Pems; ca: Pems | undefined }> {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  const server = await certificate(options.commonName ?? 'localhost')
  writeFileSync(join(dir, 'cert.pem'), server.cert)
  writeFileSync(join(dir, 'key.pem'), server.key)
  const ca = options.clientCa ? await certificateAuthority('services CA') : undefined
  if (ca !== undefined) writeFileSync(join(dir, 'client-ca.pem'), ca.cert)
  return { dir, server, ca }
}
