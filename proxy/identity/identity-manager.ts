// Keeps a workload's certificate current: makes the key here (it never leaves
// the process), trades a CSR and the workload's credential for a certificate
// at the control plane's API, checks the answer certifies our key for our
// SPIFFE ID, and renews at half-life. A failed renewal is retried with
// jittered backoff while the current certificate keeps serving, so a
// control-plane outage shorter than half a lifetime is invisible.
import { certificateExpiry, certificateMatches, generateKeyAndCsr, rotationDueAt } from './workload-key.ts';

export interface WorkloadCertificate {
  spiffeId: string;
  keyPem: string;
  /** Leaf first, then intermediates. */
  certChainPem: string;
  /** PEM roots to verify peers with (two during a root rotation). */
  trustBundle: string[];
  expiresAt: Date;
}

export interface IdentityManagerOptions {
  /** Control plane API base, e.g. `http://127.0.0.1:15014`. */
  apiBase: string;
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
    const cert = await this.obtain();
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
    const res = await fetch(new URL('/api/v1/certificates', this.options.apiBase), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ credential, csr: csrPem }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await res.json().catch(() => ({}))) as { certChain?: string; trustBundle?: string[]; error?: { message?: string; code?: string } };
    if (!res.ok || typeof body.certChain !== 'string' || !Array.isArray(body.trustBundle)) {
      const reason = body.error?.message ?? `HTTP ${res.status}`;
      throw new Error(`the control plane refused a certificate for ${spiffeId}: ${reason}${body.error?.code ? ` (${body.error.code})` : ''}`);
    }
    if (!certificateMatches(body.certChain, keyPem, spiffeId)) {
      throw new Error(`the control plane answered with a certificate that does not certify this proxy's key for ${spiffeId}`);
    }
    return { spiffeId, keyPem, certChainPem: body.certChain, trustBundle: body.trustBundle, expiresAt: certificateExpiry(body.certChain) };
  }
}
