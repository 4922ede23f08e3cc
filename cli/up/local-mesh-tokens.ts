// `jibe up` gives each proxy it starts its own bootstrap token, so every proxy
// obtains a workload certificate for exactly its identity (the key stays in
// the proxy) and both ends of every hop in the local mesh speak mTLS. Tokens
// are minted with the control plane's admin token and written 0600 under
// <data-dir>/tokens/, one per proxy, where only `jibe up`'s user can read them.
import fs from 'node:fs/promises';
import path from 'node:path';
import { JibeError } from '../../core/errors/errors.ts';

/** A token's lifetime: the local mesh lives for a session; renewals use the token again. The API's ceiling is a week (a longer ask is refused). */
const TOKEN_TTL_SECONDS = 7 * 24 * 3600;

export class LocalMeshTokens {
  private readonly server: string;
  private readonly tokenDir: string;
  private readonly adminTokenFile: string;

  /** `cpDataDir`: the control plane's --data-dir (holds admin-token); `dataDir`: jibe up's own. */
  constructor(server: string, cpDataDir: string, dataDir: string) {
    this.server = server;
    this.adminTokenFile = path.join(cpDataDir, 'admin-token');
    this.tokenDir = path.join(dataDir, 'tokens');
  }

  /** Mints a token for (namespace, serviceAccount) and returns the file it was written to. */
  async mint(proxy: string, namespace: string, serviceAccount: string): Promise<string> {
    const admin = (await fs.readFile(this.adminTokenFile, 'utf8')).trim();
    const res = await fetch(new URL('/api/v1/bootstrap-tokens', this.server), {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin}` },
      body: JSON.stringify({ namespace, serviceAccount, ttlSeconds: TOKEN_TTL_SECONDS }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await res.json().catch(() => ({}))) as { token?: string; error?: { message?: string } };
    if (!res.ok || typeof body.token !== 'string') {
      throw new JibeError('JIBE_ERR_UNAUTHENTICATED', `the control plane refused a bootstrap token for ${proxy}: ${body.error?.message ?? `HTTP ${res.status}`}`, {
        hint: `check ${this.adminTokenFile}`,
      });
    }
    await fs.mkdir(this.tokenDir, { recursive: true, mode: 0o700 });
    const file = path.join(this.tokenDir, `${proxy}.token`);
    await fs.writeFile(file, body.token + '\n', { mode: 0o600 });
    // writeFile keeps the mode of a file that already existed: make sure.
    await fs.chmod(file, 0o600);
    return file;
  }
}
