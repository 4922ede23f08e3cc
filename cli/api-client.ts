// Talks to the control plane's HTTP API; turns its errors back into JibeErrors.
import { JibeError } from '../core/errors/errors.ts';

export const DEFAULT_SERVER = process.env.JIBE_SERVER ?? 'http://127.0.0.1:15014';

export async function callApi<T>(server: string, method: string, path: string, body?: unknown): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, server), {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
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
