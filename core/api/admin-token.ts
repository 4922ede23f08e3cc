// The control plane's admin token: 32 random bytes in `<data-dir>/admin-token`,
// owner-only (0600), made on first start and kept across restarts. Whoever
// can read the data directory administers the mesh (mints bootstrap tokens),
// as whoever can read Kubernetes' admin kubeconfig does.
import { randomBytes } from 'node:crypto';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const ADMIN_TOKEN_FILE = 'admin-token';

/** Reads the admin token, creating it (0600) when the data directory has none. */
export async function loadOrCreateAdminToken(dataDir: string): Promise<string> {
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    const token = (await readFile(path, 'utf8')).trim();
    // Tighten a file someone loosened: the token is a secret.
    await chmod(path, 0o600);
    if (token !== '') return token;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const token = randomBytes(32).toString('base64url');
  await writeFile(path, token + '\n', { mode: 0o600 });
  return token;
}

/** The admin token of a control plane whose data directory is readable here (the CLI's side). */
export async function readAdminToken(dataDir: string): Promise<string> {
  return (await readFile(join(dataDir, ADMIN_TOKEN_FILE), 'utf8')).trim();
}
