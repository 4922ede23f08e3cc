// Plug-in CA: an operator's own root or intermediate, read from files, so
// workload certificates chain to the organisation's PKI instead of a root Jibe
// made up. The files stay the source of truth: nothing is copied into the
// state store, and replacing them (then restarting) is how this CA rotates.
import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { JibeError } from '../errors/errors.ts';
import { privateKeyFromPem } from './ca-keys.ts';
import { loadSigner, splitPemCertificates } from './ca-signer.ts';
import type { Signer } from './ca-signer.ts';

export interface CaRootFiles {
  /** PEM certificate the CA signs with (a root, or an intermediate). */
  cert: string;
  /** Its PEM private key (unencrypted; owner-only permissions). */
  key: string;
  /** PEM certificates from `cert`'s issuer up to and including the self-signed root. */
  chain?: string;
}

export async function loadSignerFromFiles(files: CaRootFiles, now: number): Promise<Signer> {
  const keyPath = resolve(files.key);
  await checkKeyFilePermissions(keyPath);
  const keyPem = await readText(keyPath);
  const key = privateKeyFromPem(keyPem);
  if (!key) {
    throw new JibeError('JIBE_ERR_CA_INVALID', `${keyPath} does not hold an unencrypted PEM private key`, {
      file: keyPath,
      hint: `decrypt it first, e.g. openssl pkey -in ${keyPath} -out <new file> (then chmod 600 the new file)`,
    });
  }
  const certPath = resolve(files.cert);
  const certs = splitPemCertificates(await readText(certPath));
  if (certs.length === 0) throw new JibeError('JIBE_ERR_CA_INVALID', `${certPath} holds no PEM certificate`, { file: certPath });
  // A cert file that already carries its chain (cert first) is common; accept it.
  const chainPems = certs.slice(1);
  if (files.chain) {
    const chainPath = resolve(files.chain);
    const chain = splitPemCertificates(await readText(chainPath));
    if (chain.length === 0) throw new JibeError('JIBE_ERR_CA_INVALID', `${chainPath} holds no PEM certificate`, { file: chainPath });
    chainPems.push(...chain);
  }
  return loadSigner({ certPem: certs[0], key, chainPems, where: { file: certPath }, now });
}

/**
 * Refuses a key file that anyone but its owner may read or write: a CA key
 * others can read lets them mint any identity in the mesh. Same rule as ssh.
 */
async function checkKeyFilePermissions(path: string): Promise<void> {
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch (err) {
    throw fileReadError(path, err);
  }
  // Windows has no POSIX permission bits to check; its ACLs are the operator's job.
  if (process.platform === 'win32') return;
  if ((mode & 0o077) !== 0) {
    throw new JibeError('JIBE_ERR_CA_INVALID', `CA key file ${path} is accessible by other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')})`, {
      file: path,
      hint: `run: chmod 600 ${path}`,
    });
  }
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw fileReadError(path, err);
  }
}

function fileReadError(path: string, cause: unknown): JibeError {
  const error = new JibeError('JIBE_ERR_FILE_READ', `cannot read ${path}: ${(cause as Error).message}`, {
    file: path,
    hint: 'check the path and that the control plane user may read it',
  });
  error.cause = cause;
  return error;
}
