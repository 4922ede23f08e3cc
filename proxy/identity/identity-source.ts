// Where `jibe proxy` gets its workload certificate, as a MeshIdentity kept
// current:
//  - a token file (`jibe up`'s bootstrap token, a Kubernetes projected
//    service-account token): the key is made here and never leaves the
//    process; IdentityManager trades the token and a CSR for the certificate
//    at the control plane's API and renews at half-life. A token is a bearer
//    secret, so it travels only over TLS verified against pinned roots (the
//    `jibe-ca-root-cert` ConfigMap in Kubernetes), or in plaintext to loopback;
//  - a cert dir (a VM's node agent): cert-chain.pem, key.pem and
//    root-cert.pem, which the agent rewrites when it renews; the files are
//    watched (and polled, as a rename may escape the watch) and re-read.
import fs from 'node:fs';
import path from 'node:path';
import type { ProxyLogger } from '../proxy-logger.ts';
import { MeshIdentity, uniquePems } from '../tls/mesh-identity.ts';
import { IdentityManager } from './identity-manager.ts';
import type { IdentityManagerTls, WorkloadCertificate } from './identity-manager.ts';
import { certificateExpiry, certificateMatches } from './workload-key.ts';
import { spiffeIdOf } from './mesh-tls.ts';
import { X509Certificate } from 'node:crypto';
import { JibeError } from '../../core/errors/errors.ts';

export interface RunningIdentity {
  identity: MeshIdentity;
  stop(): void;
}

export interface TokenIdentityOptions {
  tokenFile: string;
  /** The credential type the token is (default `bootstrap-token`; a Kubernetes projected token is `kubernetes-service-account-token`). */
  credentialType?: string;
  /** Control plane API base: `https://…:15015` (with `tls`), or `http://` on loopback only (`jibe up`). */
  apiBase: string;
  /** Required for an `https:` apiBase: the roots to verify the control plane with, and its SPIFFE ID. */
  tls?: { caRootFile: string; serverSpiffeId: string };
  spiffeId: string;
  logger: ProxyLogger;
}

/**
 * Refuses an API a bearer token must not be sent to: plaintext off loopback
 * (anyone on the path could replay the token), or https without roots (the
 * control plane presents a mesh certificate no system root vouches for).
 */
export function checkTokenApi(apiBase: string, caRootFile: string | undefined): URL {
  let url: URL;
  try {
    url = new URL(apiBase);
  } catch {
    throw new JibeError('JIBE_ERR_INSECURE_API', `the control plane API "${apiBase}" is not a URL`, { field: '--api', hint: 'pass --api https://<control plane>:15015' });
  }
  if (url.protocol === 'http:') {
    if (isLoopbackHost(url.hostname)) return url;
    throw new JibeError('JIBE_ERR_INSECURE_API', `refusing to send the workload's token in plaintext to ${url.host}: http:// is accepted only on loopback`, {
      field: '--api',
      hint: `use the control plane's TLS API and the mesh roots: --api https://${url.hostname}:15015 --ca-root-file <root-cert.pem> (in Kubernetes, the jibe-ca-root-cert ConfigMap)`,
    });
  }
  if (url.protocol !== 'https:') throw new JibeError('JIBE_ERR_INSECURE_API', `the control plane API "${apiBase}" is neither https:// nor http://`, { field: '--api', hint: 'pass --api https://<control plane>:15015' });
  if (caRootFile === undefined) {
    throw new JibeError('JIBE_ERR_INSECURE_API', `the control plane API ${url.origin} is TLS, but no roots were given to verify it`, { field: '--ca-root-file', hint: "pass --ca-root-file with the mesh's root certificates (in Kubernetes, the jibe-ca-root-cert ConfigMap)" });
  }
  return url;
}

/** localhost, 127.0.0.0/8 and ::1 (also IPv4-mapped): traffic that never leaves the host. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  if (host === 'localhost' || host === '::1') return true;
  // WHATWG URL writes an IPv4-mapped loopback in hex: [::ffff:7f00:1].
  if (/^::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}$/i.test(host)) return true;
  const v4 = host.toLowerCase().startsWith('::ffff:') ? host.slice(7) : host;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}

/** The PEM certificates of a roots file; throws naming the file when there are none. */
export function readRootsFile(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new JibeError('JIBE_ERR_FILE_READ', `cannot read the CA roots file ${file}: ${(err as Error).message}`, { file, field: '--ca-root-file', hint: 'in Kubernetes it is the jibe-ca-root-cert ConfigMap, mounted by injection; check the control plane published it into this namespace' });
  }
  const roots = splitPem(text);
  if (roots.length === 0) throw new JibeError('JIBE_ERR_FILE_READ', `the CA roots file ${file} holds no PEM certificate`, { file, field: '--ca-root-file' });
  return roots;
}

function splitPem(text: string): string[] {
  return text.split(/(?<=-----END CERTIFICATE-----)\s*/).filter((p) => p.includes('BEGIN CERTIFICATE'));
}

/** Obtains the first certificate (throws when refused) and keeps it current. */
export async function identityFromToken(options: TokenIdentityOptions): Promise<RunningIdentity> {
  const url = checkTokenApi(options.apiBase, options.tls?.caRootFile);
  const readToken = async () => ({ type: options.credentialType ?? 'bootstrap-token', token: (await fs.promises.readFile(options.tokenFile, 'utf8')).trim() });
  const holder: { identity?: MeshIdentity } = {};
  let tls: IdentityManagerTls | undefined;
  if (url.protocol === 'https:' && options.tls) {
    const { caRootFile, serverSpiffeId } = options.tls;
    // Read now so a missing or empty file fails at start, not at the first renewal.
    let pinned = readRootsFile(caRootFile);
    tls = {
      // Re-read at each request: the kubelet rewrites the mounted ConfigMap when the roots rotate. The
      // roots the control plane handed out over this verified channel count too, so a rotation the
      // file has not caught up with yet still verifies.
      roots: () => {
        try {
          pinned = readRootsFile(caRootFile);
        } catch (err) {
          options.logger.warn({ err: (err as Error).message }, 'CA roots file not readable; using the roots last read');
        }
        return uniquePems([...pinned, ...(holder.identity?.roots() ?? [])]);
      },
      serverSpiffeId,
    };
  }
  const manager = new IdentityManager({
    apiBase: options.apiBase,
    tls,
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
  const trustBundle = splitPem(roots);
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
