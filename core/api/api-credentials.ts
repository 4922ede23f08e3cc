// Operators' TLS credentials (Istio's `credentialName`, a Kubernetes TLS
// Secret elsewhere): certificate, key and optional client CA, kept in the
// state store as secrets (0600 on disk, never logged) and handed to the mesh,
// which inlines one only into the config of a gateway whose server names it.
//
// Admin-token routes on the loopback API port:
//   PUT    /api/v1/credentials/<ns>/<name>  {cert, key, ca?}  → its summary
//   GET    /api/v1/credentials               → summaries (never a key)
//   DELETE /api/v1/credentials/<ns>/<name>
// A credential is checked before it is stored (the PEM parses, the key is the
// certificate's), so a gateway never gets one it cannot serve with.
// Replicas sharing a state store see each other's writes by a periodic reread.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type http from 'node:http';
import type { Logger } from 'pino';
import { JibeError } from '../errors/errors.ts';
import { credentialKey } from '../model/credential.ts';
import type { TlsCredential } from '../model/credential.ts';
import { isDns1123Label, isDns1123Subdomain } from '../config/names.ts';
import type { StateStore } from '../state/state-store.ts';
import type { ApiRoute } from './api-routes.ts';

const PREFIX = 'credentials/';
/** A chain, key and CA bundle fit well within this; more is a mistake (or abuse). */
const MAX_PEM = 256 * 1024;
const DEFAULT_REREAD_MS = 15_000;

export interface CredentialSummary {
  namespace: string;
  name: string;
  subject: string;
  subjectAltNames: string[];
  notAfter: string;
  hasCa: boolean;
}

export interface TlsCredentialsOptions {
  state: StateStore;
  /** Called with the whole set after each change; `signature` differs exactly when the set does. */
  onChange: (credentials: ReadonlyMap<string, TlsCredential>, signature: string) => void;
  logger: Logger;
  /** How often to reread the store for other replicas' writes (0 = never). */
  rereadMs?: number;
}

export class TlsCredentials {
  private readonly options: TlsCredentialsOptions;
  private timer: ReturnType<typeof setInterval> | undefined;
  private loading: Promise<void> | undefined;

  constructor(options: TlsCredentialsOptions) {
    this.options = options;
  }

  /** Reads every stored credential and starts the reread for other replicas' writes. */
  async start(): Promise<void> {
    await this.reload();
    const every = this.options.rereadMs ?? DEFAULT_REREAD_MS;
    if (every > 0) {
      this.timer = setInterval(() => {
        this.reload().catch((err: Error) => this.options.logger.warn({ err: err.message }, 'rereading TLS credentials failed; gateways keep the ones they have'));
      }, every);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  async put(namespace: string, name: string, body: unknown): Promise<CredentialSummary> {
    checkName(namespace, name);
    const b = body as { cert?: unknown; key?: unknown; ca?: unknown } | undefined;
    if (typeof b?.cert !== 'string' || typeof b.key !== 'string' || (b.ca !== undefined && typeof b.ca !== 'string')) {
      throw new JibeError('JIBE_ERR_BAD_REQUEST', 'body must be {"cert": "<PEM chain>", "key": "<PEM key>", "ca"?: "<PEM roots>"}');
    }
    const credential: TlsCredential = { namespace, name, cert: b.cert, key: b.key, ...(b.ca ? { ca: b.ca } : {}) };
    const summary = summarize(credential);
    await this.options.state.put(PREFIX + credentialKey(namespace, name), credential, { secret: true });
    await this.reload();
    return summary;
  }

  async delete(namespace: string, name: string): Promise<{ deleted: string }> {
    checkName(namespace, name);
    const existed = await this.options.state.delete(PREFIX + credentialKey(namespace, name));
    if (!existed) throw new JibeError('JIBE_ERR_NOT_FOUND', `no TLS credential ${namespace}/${name}`, { resource: `credential/${namespace}/${name}` });
    await this.reload();
    return { deleted: credentialKey(namespace, name) };
  }

  async list(): Promise<{ credentials: CredentialSummary[] }> {
    const entries = await this.options.state.list<TlsCredential>(PREFIX);
    return { credentials: entries.map((e) => summarize(e.value, true)) };
  }

  /** The admin routes (loopback port only: they carry private keys in). ApiServer hands them path segments already decoded. */
  routes(requireAdmin: (req: http.IncomingMessage) => void): ApiRoute[] {
    const path = /^\/api\/v1\/credentials\/([^/]+)\/([^/]+)$/;
    return [
      { method: 'GET', pattern: /^\/api\/v1\/credentials$/, handler: async (req) => (requireAdmin(req), this.list()) },
      { method: 'PUT', pattern: path, handler: async (req, p, body) => (requireAdmin(req), { credential: await this.put(p[0], p[1], body) }) },
      { method: 'DELETE', pattern: path, handler: async (req, p) => (requireAdmin(req), this.delete(p[0], p[1])) },
    ];
  }

  /** One reread at a time; a caller arriving during one waits for a fresh one. */
  private async reload(): Promise<void> {
    while (this.loading) await this.loading;
    this.loading = (async () => {
      const entries = await this.options.state.list<TlsCredential>(PREFIX);
      const map = new Map<string, TlsCredential>();
      for (const e of entries) map.set(credentialKey(e.value.namespace, e.value.name), e.value);
      this.options.onChange(map, entries.map((e) => `${e.key}@${e.version}`).join(','));
    })();
    try {
      await this.loading;
    } finally {
      this.loading = undefined;
    }
  }
}

function checkName(namespace: string, name: string): void {
  if (!isDns1123Label(namespace)) throw new JibeError('JIBE_ERR_BAD_REQUEST', `invalid namespace ${JSON.stringify(namespace)}: lower-case letters, digits and "-"`, { field: 'namespace' });
  if (!isDns1123Subdomain(name)) throw new JibeError('JIBE_ERR_BAD_REQUEST', `invalid credential name ${JSON.stringify(name)}: lower-case letters, digits, "-" and "."`, { field: 'name' });
}

/** Parses and cross-checks a credential; `stored`: it was checked when written, so only describe it. */
function summarize(c: TlsCredential, stored = false): CredentialSummary {
  const bad = (field: string, why: string) => new JibeError('JIBE_ERR_BAD_REQUEST', `credential ${c.namespace}/${c.name}: ${why}`, { field, resource: `credential/${c.namespace}/${c.name}` });
  for (const [field, pem] of [['cert', c.cert], ['key', c.key], ['ca', c.ca]] as const) {
    if (pem !== undefined && pem.length > MAX_PEM) throw bad(field, `${field} is larger than ${MAX_PEM / 1024} KiB`);
  }
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(c.cert);
  } catch (err) {
    throw bad('cert', `cert is not a PEM certificate (${(err as Error).message})`);
  }
  if (!stored) {
    let key;
    try {
      key = createPrivateKey(c.key);
    } catch (err) {
      throw bad('key', `key is not a PEM private key (${(err as Error).message})`);
    }
    if (!leaf.checkPrivateKey(key)) throw bad('key', "key is not the certificate's private key (they do not match)");
    if (new Date(leaf.validTo).getTime() < Date.now()) throw bad('cert', `the certificate expired on ${leaf.validTo}`);
    if (c.ca !== undefined) {
      try {
        new X509Certificate(c.ca);
      } catch (err) {
        throw bad('ca', `ca is not a PEM certificate (${(err as Error).message})`);
      }
    }
  }
  const sans = (leaf.subjectAltName ?? '').split(', ').filter(Boolean);
  return { namespace: c.namespace, name: c.name, subject: leaf.subject.replace(/\n/g, ', '), subjectAltNames: sans, notAfter: new Date(leaf.validTo).toISOString(), hasCa: c.ca !== undefined };
}
