// Talks to the control plane's HTTP API; turns its errors back into JibeErrors.
import { JibeError } from '../core/errors/errors.ts';

export const DEFAULT_SERVER = process.env.JIBE_SERVER ?? 'http://127.0.0.1:15014';

export async function callApi<T>(server: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, server), {
      method,
      headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new JibeError('JIBE_ERR_CONTROL_PLANE_UNREACHABLE', `the control plane at ${server} did not answer (${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message})`, {
      hint: 'start it with `jibe up` (local mesh) or `jibe control-plane`, or pass --server',
    });
  }
  const payload = (await res.json().catch(() => ({}))) as { error?: unknown };
  if (!res.ok) throw JibeError.fromJSON(payload.error ?? { code: 'JIBE_ERR_BAD_REQUEST', message: `HTTP ${res.status}` });
  return payload as T;
}

/**
 * An admin call: the admin token comes from the control plane's data
 * directory, so admin commands run where the operator can read it (the
 * control plane's host, as its user).
 */
export async function adminCall<T>(opts: { server: string; dataDir: string }, method: string, path: string, body?: unknown): Promise<T> {
  const { readAdminToken } = await import('../core/api/admin-token.ts');
  let admin: string;
  try {
    admin = await readAdminToken(opts.dataDir);
  } catch (err) {
    throw new JibeError('JIBE_ERR_FILE_READ', `cannot read the admin token in ${opts.dataDir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      hint: "run this on the control plane's host as the user that runs it, or pass --data-dir",
    });
  }
  return callApi<T>(opts.server, method, path, body, { authorization: `Bearer ${admin}` });
}
