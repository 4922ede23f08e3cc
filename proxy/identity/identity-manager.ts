// Keeps a workload's certificate current: makes the key here (it never leaves
// the process), trades a CSR and the workload's credential for a certificate
// at the control plane's API, checks the answer certifies our key for our
// SPIFFE ID, and renews at half-life. A failed renewal is retried with
// jittered backoff while the current certificate keeps serving, so a
// control-plane outage shorter than half a lifetime is invisible.
import https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { certificateExpiry, certificateMatches, generateKeyAndCsr, rotationDueAt } from './workload-key.ts';
import { spiffeIdOf } from './mesh-tls.ts';

export interface WorkloadCertificate {
  spiffeId: string;
  keyPem: string;
  /** Leaf first, then intermediates. */
  certChainPem: string;
  /** PEM roots to verify peers with (two during a root rotation). */
  trustBundle: string[];
  expiresAt: Date;
  /** Labels the credential granted with the identity (a VM join token's), when any. */
  labels?: Record<string, string>;
}

/**
 * Talking to the control plane's TLS API (a VM's node agent): the server must
 * chain to `roots` and present `serverSpiffeId`; with `clientCertificate`, the
 * certificate in force is presented, so renewal can authenticate by it.
 */
export interface IdentityManagerTls {
  roots: () => string[];
  serverSpiffeId: string;
  clientCertificate?: boolean;
}

export interface IdentityManagerOptions {
  /** Control plane API base, e.g. `http://127.0.0.1:15014` (or `https://…` with `tls`); re-read at each request when a function. */
  apiBase: string | (() => string);
  /** Required for an `https:` apiBase: whom to trust, and whether to present our certificate. */
  tls?: IdentityManagerTls;
  /** A certificate kept from before (a restarted agent): used while valid instead of obtaining one at start. */
  initial?: WorkloadCertificate;
  spiffeId: string;
  /** The credential proving who we are (re-read at each renewal: a token file may be refreshed). */
  credential: () => Promise<{ type: string; token: string }>;
  /** Called with each new certificate, after the first. */
  onRotate?: (cert: WorkloadCertificate) => void;
  onError?: (err: Error) => void;
  /** First retry delay after a failure; doubles up to 30 s, with jitter. */
  retryBaseMs?: number;
  now?: () => number;
}

export class IdentityManager {
  private readonly options: IdentityManagerOptions;
  private cert: WorkloadCertificate | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private failures = 0;
  private stopped = false;

  constructor(options: IdentityManagerOptions) {
    this.options = options;
  }

  /** The certificate in force; undefined before start() resolved. */
  get current(): WorkloadCertificate | undefined {
    return this.cert;
  }

  /** Obtains the first certificate (throws when the control plane refuses) and schedules renewal. */
  async start(): Promise<WorkloadCertificate> {
    const kept = this.options.initial;
    const cert = kept && kept.spiffeId === this.options.spiffeId && kept.expiresAt.getTime() > this.now() ? kept : await this.obtain();
    this.cert = cert;
    this.schedule(rotationDueAt(cert.certChainPem).getTime() - this.now());
    return cert;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Renews now (also what the timer does at half-life). */
  async rotate(): Promise<WorkloadCertificate> {
    const cert = await this.obtain();
    this.cert = cert;
    this.failures = 0;
    this.options.onRotate?.(cert);
    this.schedule(rotationDueAt(cert.certChainPem).getTime() - this.now());
    return cert;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    // setTimeout caps at 2^31-1 ms (~24.8 days); a longer wait is re-armed on wake.
    this.timer = setTimeout(() => void this.renew(), Math.max(0, Math.min(delayMs, 2 ** 31 - 1)));
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    this.timer = undefined;
    if (this.stopped) return;
    const due = this.cert === undefined ? 0 : rotationDueAt(this.cert.certChainPem).getTime();
    if (this.now() < due) return this.schedule(due - this.now());
    try {
      await this.rotate();
    } catch (err) {
      this.failures++;
      this.options.onError?.(err as Error);
      const base = this.options.retryBaseMs ?? 1000;
      const backoff = Math.min(30_000, base * 2 ** Math.min(this.failures - 1, 15));
      this.schedule(backoff / 2 + Math.random() * (backoff / 2));
    }
  }

  private async obtain(): Promise<WorkloadCertificate> {
    const { spiffeId } = this.options;
    const { keyPem, csrPem } = await generateKeyAndCsr(spiffeId);
    const credential = await this.options.credential();
    const apiBase = typeof this.options.apiBase === 'function' ? this.options.apiBase() : this.options.apiBase;
    const url = new URL('/api/v1/certificates', apiBase);
    const payload = JSON.stringify({ credential, csr: csrPem });
    const { status, body } = url.protocol === 'https:' ? await this.postTls(url, payload) : await postPlain(url, payload);
    if (status < 200 || status > 299 || typeof body.certChain !== 'string' || !Array.isArray(body.trustBundle)) {
      const reason = body.error?.message ?? `HTTP ${status}`;
      const err = new Error(`the control plane refused a certificate for ${spiffeId}: ${reason}${body.error?.code ? ` (${body.error.code})` : ''}`) as Error & { code?: string; status?: number };
      err.code = body.error?.code;
      err.status = status;
      throw err;
    }
    if (!certificateMatches(body.certChain, keyPem, spiffeId)) {
      throw new Error(`the control plane answered with a certificate that does not certify this proxy's key for ${spiffeId}`);
    }
    const labels = body.labels && typeof body.labels === 'object' ? { labels: body.labels } : {};
    return { spiffeId, keyPem, certChainPem: body.certChain, trustBundle: body.trustBundle, expiresAt: certificateExpiry(body.certChain), ...labels };
  }

  private postTls(url: URL, payload: string): Promise<CertificateAnswer> {
    const tls = this.options.tls;
    if (!tls) return Promise.reject(new Error(`an https: control plane API (${url.origin}) needs the tls option (roots and the server's SPIFFE ID)`));
    const own = tls.clientCertificate ? this.cert : undefined;
    return new Promise((resolve, reject) => {
      const req = https.request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        ca: tls.roots(),
        ...(own ? { key: own.keyPem, cert: own.certChainPem } : {}),
        minVersion: 'TLSv1.2',
        // The control plane's certificate names a SPIFFE ID, not a host name.
        checkServerIdentity: (_host: string, peer: PeerCertificate) => {
          const id = spiffeIdOf(peer);
          return id === tls.serverSpiffeId ? undefined : new Error(`the control plane at ${url.host} is ${id ?? 'no SPIFFE identity'}, not ${tls.serverSpiffeId}`);
        },
        agent: false,
        timeout: 15_000,
      });
      req.on('timeout', () => req.destroy(new Error(`the control plane at ${url.host} did not answer in 15 s`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let body: CertificateAnswer['body'] = {};
          try {
            body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            // A non-JSON answer is reported by its status below.
          }
          resolve({ status: res.statusCode ?? 0, body });
        });
      });
      req.end(payload);
    });
  }
}

interface CertificateAnswer {
  status: number;
  body: { certChain?: string; trustBundle?: string[]; labels?: Record<string, string>; error?: { message?: string; code?: string } };
}

async function postPlain(url: URL, payload: string): Promise<CertificateAnswer> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: payload, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as CertificateAnswer['body'] };
}
