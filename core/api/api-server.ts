// The control plane's HTTP API (port 15014, loopback by default): what the CLI
// and agents call to apply rules, register workloads and read status.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { JibeError, isJibeError } from '../errors/errors.ts';
import type { ErrorCode } from '../errors/errors.ts';
import type { ConfigService } from '../config/config-service.ts';
import type { ParsedDocument } from '../config/load-documents.ts';
import type { ResourceRef } from '../config/config-store.ts';
import type { WorkloadRegistrar, WorkloadRegistration } from '../registry/workload-registrar.ts';
import type { MeshSnapshot } from '../mesh/mesh-snapshot.ts';
import { issueCertificate, mintBootstrapToken, trustBundle } from './api-certificates.ts';
import type { CertificateApiDeps } from './api-certificates.ts';
import type { ApiHandler, ApiRoute } from './api-routes.ts';

export interface ApiServerDeps {
  config: ConfigService;
  registrar: WorkloadRegistrar;
  snapshot: () => MeshSnapshot;
  /** Discovery status of every connected proxy. */
  proxies: () => unknown[];
  /** Extra facts for `GET /api/v1/status`. */
  status: () => Record<string, unknown>;
  /** The CA's endpoints (certificates, trust bundle, bootstrap tokens). */
  certificates: CertificateApiDeps;
  logger: Logger;
  /** Routes platforms add (core/api/api-routes.ts); those marked `tls` are also on the TLS port. */
  extraRoutes?: ApiRoute[];
  /** The control plane's Prometheus metrics, served as `GET /metrics` on the plain port (istiod's 15014 /metrics). */
  metrics?: { render(): Promise<string>; contentType: string };
}

/** The serving identity of the TLS port: a grpc-js style certificate provider (core/discovery/discovery-tls.ts ControlPlaneIdentity). */
export interface TlsIdentitySource {
  addIdentityCertificateListener(listener: (update: { certificate: Buffer; privateKey: Buffer } | null) => void): void;
  addCaCertificateListener(listener: (update: { caCertificate: Buffer } | null) => void): void;
  removeIdentityCertificateListener(listener: (update: { certificate: Buffer; privateKey: Buffer } | null) => void): void;
  removeCaCertificateListener(listener: (update: { caCertificate: Buffer } | null) => void): void;
}

const MAX_BODY = 16 * 1024 * 1024;

const STATUS_BY_CODE: Partial<Record<ErrorCode, number>> = {
  JIBE_ERR_NOT_FOUND: 404,
  JIBE_ERR_CONFLICT: 409,
  JIBE_ERR_UNAUTHENTICATED: 401,
  JIBE_ERR_JOIN_TOKEN: 401,
  JIBE_ERR_FORBIDDEN: 403,
  JIBE_ERR_CSR_REJECTED: 403,
  JIBE_ERR_STORE_IO: 500,
  JIBE_ERR_STORE_CORRUPT: 500,
};

type Handler = ApiHandler;

export class ApiServer {
  private readonly server: http.Server;
  private readonly routes: Array<{ method: string; pattern: RegExp; handler: Handler; tls?: boolean }>;
  private tlsServer: https.Server | undefined;
  private stopTlsUpdates: (() => void) | undefined;
  private readonly deps: ApiServerDeps;

  constructor(deps: ApiServerDeps) {
    this.deps = deps;
    this.routes = [
      { method: 'GET', pattern: /^\/healthz$/, handler: async () => ({ ok: true }), tls: true },
      { method: 'GET', pattern: /^\/ready$/, handler: async () => ({ ok: true }), tls: true },
      { method: 'GET', pattern: /^\/api\/v1\/status$/, handler: async () => ({ version: deps.snapshot().version, ...deps.status() }) },
      { method: 'GET', pattern: /^\/api\/v1\/config$/, handler: (_r, _p, _b, url) => this.listConfig(url) },
      { method: 'POST', pattern: /^\/api\/v1\/config\/apply$/, handler: (_r, _p, body) => this.apply(body) },
      { method: 'POST', pattern: /^\/api\/v1\/config\/delete$/, handler: (_r, _p, body) => this.delete(body) },
      { method: 'GET', pattern: /^\/api\/v1\/services$/, handler: async () => ({ services: [...deps.snapshot().services.values()] }) },
      { method: 'GET', pattern: /^\/api\/v1\/workloads$/, handler: async () => ({ workloads: deps.snapshot().workloads }) },
      { method: 'PUT', pattern: /^\/api\/v1\/workloads$/, handler: async (_r, _p, body) => ({ workload: await deps.registrar.register(body as WorkloadRegistration) }) },
      { method: 'DELETE', pattern: /^\/api\/v1\/workloads\/([^/]+)\/([^/]+)$/, handler: (_r, p) => this.deregister(p[0], p[1]) },
      { method: 'POST', pattern: /^\/api\/v1\/workloads\/([^/]+)\/([^/]+)\/health$/, handler: (_r, p, body) => this.health(p[0], p[1], body) },
      { method: 'POST', pattern: /^\/api\/v1\/certificates$/, handler: (req, _p, body) => issueCertificate(deps.certificates, body, req), tls: true },
      { method: 'GET', pattern: /^\/api\/v1\/trust-bundle$/, handler: async () => trustBundle(deps.certificates), tls: true },
      { method: 'POST', pattern: /^\/api\/v1\/bootstrap-tokens$/, handler: (req, _p, body) => mintBootstrapToken(deps.certificates, req, body), tls: true },
      { method: 'GET', pattern: /^\/api\/v1\/proxies$/, handler: async () => ({ version: String(deps.snapshot().version), proxies: deps.proxies() }) },
      ...(deps.extraRoutes ?? []),
    ];
    this.server = http.createServer((req, res) => void this.handle(req, res, false));
  }

  /**
   * Serves the routes marked `tls` on a second port with the control plane's
   * own certificate (renewed in place). Clients may present a workload
   * certificate; it is verified against the mesh roots but not required, so
   * a VM can fetch the trust bundle and trade its join token before it has one.
   */
  async listenTls(host: string, port: number, identity: TlsIdentitySource): Promise<number> {
    let current: { certificate: Buffer; privateKey: Buffer } | undefined;
    let roots: Buffer | undefined;
    let ready: () => void = () => {};
    const first = new Promise<void>((resolve) => (ready = resolve));
    const apply = () => {
      if (!current || !roots) return;
      const context = { key: current.privateKey, cert: current.certificate, ca: roots };
      if (this.tlsServer) this.tlsServer.setSecureContext(context);
      ready();
    };
    const onIdentity = (u: { certificate: Buffer; privateKey: Buffer } | null) => {
      if (!u) return;
      current = u;
      apply();
    };
    const onCa = (u: { caCertificate: Buffer } | null) => {
      if (!u) return;
      roots = u.caCertificate;
      apply();
    };
    identity.addIdentityCertificateListener(onIdentity);
    identity.addCaCertificateListener(onCa);
    this.stopTlsUpdates = () => {
      identity.removeIdentityCertificateListener(onIdentity);
      identity.removeCaCertificateListener(onCa);
    };
    await first;
    this.tlsServer = https.createServer(
      { key: current!.privateKey, cert: current!.certificate, ca: roots, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
      (req, res) => void this.handle(req, res, true),
    );
    const server = this.tlsServer;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? new JibeError('JIBE_ERR_PORT_IN_USE', `port ${port} on ${host} is already in use`, { hint: 'stop the process using it or pass another --api-tls-port' }) : err);
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        resolve((server.address() as AddressInfo).port);
      });
    });
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) =>
        reject(err.code === 'EADDRINUSE' ? new JibeError('JIBE_ERR_PORT_IN_USE', `port ${port} on ${host} is already in use`, { hint: 'stop the process using it or pass another --api-port' }) : err);
      this.server.once('error', onError);
      this.server.listen(port, host, () => {
        this.server.off('error', onError);
        resolve((this.server.address() as AddressInfo).port);
      });
    });
  }

  async close(): Promise<void> {
    this.stopTlsUpdates?.();
    const servers: http.Server[] = [this.server, ...(this.tlsServer ? [this.tlsServer] : [])];
    await Promise.all(
      servers.map((server) => {
        server.closeAllConnections();
        return new Promise<void>((resolve) => server.close(() => resolve()));
      }),
    );
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse, overTls: boolean): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // Prometheus text, not JSON; never on the TLS port VMs reach.
    if (url.pathname === '/metrics' && req.method === 'GET' && !overTls && this.deps.metrics) return this.serveMetrics(this.deps.metrics, res);
    let status = 200;
    let payload: unknown;
    try {
      // The TLS port is reachable from VMs: only what they need is served there.
      const routes = overTls ? this.routes.filter((r) => r.tls) : this.routes;
      const route = routes.find((r) => r.method === req.method && r.pattern.test(url.pathname));
      if (!route) {
        const known = routes.some((r) => r.pattern.test(url.pathname));
        throw new JibeError(known ? 'JIBE_ERR_BAD_REQUEST' : 'JIBE_ERR_NOT_FOUND', `${req.method} ${url.pathname} is not an API endpoint`);
      }
      const params = route.pattern.exec(url.pathname)!.slice(1).map(decodeURIComponent);
      const body = req.method === 'GET' || req.method === 'DELETE' ? undefined : await readJson(req);
      payload = await route.handler(req, params, body, url);
    } catch (err) {
      const e = isJibeError(err) ? err : new JibeError('JIBE_ERR_BAD_REQUEST', (err as Error).message);
      status = STATUS_BY_CODE[e.code] ?? (isJibeError(err) ? 400 : 500);
      if (status >= 500) this.deps.logger.error({ err }, 'API request failed');
      payload = { error: e.toJSON() };
    }
    const text = JSON.stringify(payload);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async serveMetrics(metrics: NonNullable<ApiServerDeps['metrics']>, res: http.ServerResponse): Promise<void> {
    try {
      const text = await metrics.render();
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    } catch (err) {
      this.deps.logger.error({ err }, 'rendering metrics failed');
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${(err as Error).message}\n`);
    }
  }

  private async listConfig(url: URL): Promise<unknown> {
    const kind = url.searchParams.get('kind') ?? undefined;
    const namespace = url.searchParams.get('namespace');
    const name = url.searchParams.get('name');
    const items = (await this.deps.config.list(kind)).filter(
      (r) => (!namespace || (r.metadata.namespace ?? 'default') === namespace) && (!name || r.metadata.name === name),
    );
    return { items };
  }

  private async apply(body: unknown): Promise<unknown> {
    const b = body as { documents?: ParsedDocument[]; dryRun?: boolean };
    if (!Array.isArray(b?.documents)) throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"documents": [{resource, source}]}');
    const results = await this.deps.config.apply(b.documents, { dryRun: b.dryRun === true });
    this.deps.logger.info({ results, dryRun: b.dryRun === true }, 'config applied');
    return { results };
  }

  private async delete(body: unknown): Promise<unknown> {
    const b = body as { refs?: ResourceRef[]; dryRun?: boolean };
    if (!Array.isArray(b?.refs)) throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"refs": [{kind, namespace, name}]}');
    const deleted = await this.deps.config.delete(b.refs, { dryRun: b.dryRun === true });
    this.deps.logger.info({ deleted }, 'config deleted');
    return { deleted };
  }

  private async deregister(namespace: string, name: string): Promise<unknown> {
    if (!(await this.deps.registrar.deregister(namespace, name))) {
      throw new JibeError('JIBE_ERR_NOT_FOUND', `no workload ${namespace}/${name} is registered`);
    }
    return { deregistered: `${namespace}/${name}` };
  }

  private async health(namespace: string, name: string, body: unknown): Promise<unknown> {
    const health = (body as { health?: string })?.health;
    if (health !== 'healthy' && health !== 'unhealthy') throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"health": "healthy" | "unhealthy"}');
    await this.deps.registrar.setHealth(namespace, name, health);
    return { health };
  }
}

function readJson(req: http.IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new JibeError('JIBE_ERR_BAD_REQUEST', `request body is larger than ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('error', reject);
    req.on('end', () => {
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new JibeError('JIBE_ERR_BAD_REQUEST', 'request body is not valid JSON'));
      }
    });
  });
}
