// The admission webhook server (port 15017): `/inject` (mutating, pods) and
// `/validate` (validating, rules). It serves with a certificate from Jibe's
// own CA carrying the Service's DNS names, renewed at half-life and whenever
// the CA's roots change; the new certificate is swapped into the listening
// server, so renewal drops no connection. The CA bundle the API server must
// trust is published to the webhook configurations (see webhook-ca-bundle.ts).
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { CertificateAuthority, ServerNames } from '../../core/ca/certificate-authority.ts';
import type { Resource } from '../../core/model/resource.ts';
import { mutatePodReview, reviewResponse, validateRuleReview } from './admission-review.ts';
import type { AdmissionReview } from './admission-review.ts';
import type { InjectionOptions } from './inject-pod.ts';

export const WEBHOOK_PORT = 15017;
const MAX_BODY = 8 * 1024 * 1024;

export interface WebhookServerOptions {
  ca: CertificateAuthority;
  /** The SPIFFE ID and host names the serving certificate names. */
  spiffeId: string;
  serverNames: ServerNames;
  injection: InjectionOptions;
  /** Labels of a namespace (undefined when unknown: then only an explicit pod opt-in injects). */
  namespaceLabels(namespace: string): Promise<Record<string, string> | undefined>;
  /** Every rule as stored now, for cross-reference checks. */
  rules(): Promise<Resource[]>;
  knownHosts(): Set<string>;
  logger?: Logger;
}

export class AdmissionWebhookServer {
  private readonly options: WebhookServerOptions;
  private server: https.Server | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private unsubscribe: (() => void) | undefined;
  private current: { cert: string; key: string; expiresAt: Date } | undefined;
  /** How many certificates were issued; a renewal shows up here. */
  renewals = 0;

  constructor(options: WebhookServerOptions) {
    this.options = options;
  }

  async listen(host: string, port: number): Promise<number> {
    await this.renew();
    const server = https.createServer({ cert: this.current!.cert, key: this.current!.key, minVersion: 'TLSv1.2' }, (req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.unsubscribe = this.options.ca.onChange(() => void this.renew());
    return (server.address() as AddressInfo).port;
  }

  /** PEM roots the API server must trust for this server (the webhook configurations' caBundle). */
  caBundle(): string {
    return this.options.ca.trustBundle().join('');
  }

  /** The serving certificate in use now (for tests and `jibe check`). */
  certificate(): { cert: string; expiresAt: Date } | undefined {
    return this.current && { cert: this.current.cert, expiresAt: this.current.expiresAt };
  }

  async close(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }

  /** Issues a fresh certificate now and swaps it into the running server. */
  async renew(): Promise<void> {
    try {
      const own = await this.options.ca.issueOwn(this.options.spiffeId, this.options.serverNames);
      this.current = { cert: own.certChainPem, key: own.keyPem, expiresAt: own.expiresAt };
      this.renewals++;
      this.server?.setSecureContext({ cert: own.certChainPem, key: own.keyPem, minVersion: 'TLSv1.2' });
      this.schedule((own.expiresAt.getTime() - Date.now()) / 2);
    } catch (err) {
      this.options.logger?.error({ err }, 'renewing the webhook serving certificate failed; retrying in 30 s');
      this.schedule(30_000);
      if (!this.current) throw err;
    }
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), Math.max(1000, Math.min(ms, 2 ** 31 - 1)));
    this.timer.unref();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && (path === '/ready' || path === '/healthz')) return send(res, 200, { ok: true });
    if (req.method !== 'POST' || (path !== '/inject' && path !== '/validate')) return send(res, 404, { error: 'POST /inject or /validate' });
    let review: AdmissionReview;
    try {
      review = JSON.parse(await readBody(req)) as AdmissionReview;
    } catch (err) {
      return send(res, 400, { error: `the body is not an AdmissionReview: ${(err as Error).message}` });
    }
    const request = review?.request;
    if (!request?.uid) return send(res, 400, { error: 'AdmissionReview.request.uid is missing' });
    try {
      if (path === '/inject') {
        const labels = request.namespace ? await this.options.namespaceLabels(request.namespace) : undefined;
        return send(res, 200, mutatePodReview(request, labels, this.options.injection));
      }
      const rules = await this.options.rules();
      return send(res, 200, validateRuleReview(request, rules, this.options.knownHosts()));
    } catch (err) {
      this.options.logger?.error({ err, path, uid: request.uid }, 'admission review failed');
      // The configuration's failurePolicy decides what a failure means; say why.
      return send(res, 200, reviewResponse(request, { allowed: false, status: { code: 500, reason: 'InternalError', message: `Jibe could not review this request: ${(err as Error).message}` } }));
    }
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error(`larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}
