// Where `jibe proxy` gets its workload certificate, as a MeshIdentity kept
// current:
//  - a bootstrap token file (`jibe up`): the key is made here and never leaves
//    the process; IdentityManager trades the token and a CSR for the
//    certificate at the control plane's API and renews at half-life;
//  - a cert dir (a VM's node agent): cert-chain.pem, key.pem and
//    root-cert.pem, which the agent rewrites when it renews; the files are
//    watched (and polled, as a rename may escape the watch) and re-read.
import fs from 'node:fs';
import path from 'node:path';
import type { ProxyLogger } from '../proxy-logger.ts';
import { MeshIdentity } from '../tls/mesh-identity.ts';
import { IdentityManager } from './identity-manager.ts';
import type { WorkloadCertificate } from './identity-manager.ts';
import { certificateExpiry, certificateMatches } from './workload-key.ts';
import { spiffeIdOf } from './mesh-tls.ts';
import { X509Certificate } from 'node:crypto';

export interface RunningIdentity {
  identity: MeshIdentity;
  stop(): void;
}

export interface TokenIdentityOptions {
  tokenFile: string;
  /** The credential type the token is (default `bootstrap-token`; a Kubernetes projected token is `kubernetes-service-account-token`). */
  credentialType?: string;
  /** Control plane API base, e.g. `http://127.0.0.1:15014`. */
  apiBase: string;
  spiffeId: string;
  logger: ProxyLogger;
}

/** Obtains the first certificate (throws when refused) and keeps it current. */
export async function identityFromToken(options: TokenIdentityOptions): Promise<RunningIdentity> {
  const readToken = async () => ({ type: options.credentialType ?? 'bootstrap-token', token: (await fs.promises.readFile(options.tokenFile, 'utf8')).trim() });
  const holder: { identity?: MeshIdentity } = {};
  const manager = new IdentityManager({
    apiBase: options.apiBase,
    spiffeId: options.spiffeId,
    credential: readToken,
    onRotate: (cert) => {
      holder.identity?.update(cert);
      options.logger.info({ spiffeId: cert.spiffeId, expiresAt: cert.expiresAt.toISOString() }, 'workload certificate rotated');
    },
    onError: (err) => options.logger.warn({ err: err.message }, 'workload certificate renewal failed; retrying, the current certificate keeps serving'),
  });
  const cert = await manager.start();
  const identity = new MeshIdentity(cert);
  holder.identity = identity;
  return { identity, stop: () => manager.stop() };
}

export const CERT_DIR_FILES = { chain: 'cert-chain.pem', key: 'key.pem', root: 'root-cert.pem' } as const;

/** Reads a cert dir; throws naming the file that is missing or does not fit. */
export function readCertDir(dir: string): WorkloadCertificate {
  const read = (name: string): string => {
    try {
      return fs.readFileSync(path.join(dir, name), 'utf8');
    } catch (err) {
      throw new Error(`cert dir ${dir}: cannot read ${name}: ${(err as Error).message}`, { cause: err });
    }
  };
  const certChainPem = read(CERT_DIR_FILES.chain);
  const keyPem = read(CERT_DIR_FILES.key);
  const roots = read(CERT_DIR_FILES.root);
  const spiffeId = spiffeIdOf(new X509Certificate(certChainPem).toLegacyObject());
  if (spiffeId === undefined) throw new Error(`cert dir ${dir}: ${CERT_DIR_FILES.chain} carries no SPIFFE ID`);
  if (!certificateMatches(certChainPem, keyPem, spiffeId)) throw new Error(`cert dir ${dir}: ${CERT_DIR_FILES.key} is not the key of ${CERT_DIR_FILES.chain}`);
  const trustBundle = roots.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((p) => p.includes('BEGIN CERTIFICATE'));
  return { spiffeId, keyPem, certChainPem, trustBundle, expiresAt: certificateExpiry(certChainPem) };
}

/** Serves the certificate of a cert dir, re-read whenever its files change (the agent renews them). */
export function identityFromCertDir(dir: string, logger: ProxyLogger, pollMs = 30_000): RunningIdentity {
  const identity = new MeshIdentity(readCertDir(dir));
  let last = identity.certificate.certChainPem + identity.certificate.trustBundle.join('');
  const reload = (): void => {
    let cert: WorkloadCertificate;
    try {
      cert = readCertDir(dir);
    } catch (err) {
      // A half-written renewal: the next change or poll picks up the finished files.
      logger.debug({ err: (err as Error).message }, 'cert dir not readable yet');
      return;
    }
    const now = cert.certChainPem + cert.trustBundle.join('');
    if (now === last) return;
    last = now;
    identity.update(cert);
    logger.info({ spiffeId: cert.spiffeId, expiresAt: cert.expiresAt.toISOString() }, 'workload certificate reloaded from the cert dir');
  };
  let debounce: ReturnType<typeof setTimeout> | undefined;
  let watcher: fs.FSWatcher | undefined;
  try {
    watcher = fs.watch(dir, () => {
      if (debounce !== undefined) clearTimeout(debounce);
      debounce = setTimeout(reload, 100);
      debounce.unref();
    });
    watcher.unref();
  } catch {
    // Polling alone still picks up renewals.
  }
  const poll = setInterval(reload, pollMs);
  poll.unref();
  return {
    identity,
    stop: () => {
      watcher?.close();
      clearInterval(poll);
      if (debounce !== undefined) clearTimeout(debounce);
    },
  };
}
