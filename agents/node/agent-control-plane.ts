// How the node agent talks to the control plane's TLS API (15015).
//
// First contact (`firstContact`) trusts nothing but the join token: it reads
// the trust bundle over an unverified connection, accepts it only if a root in
// it hashes (SHA-256 of the DER) to the token's pin, and then proves the
// server by a second, verified connection: its chain must lead to that pinned
// root and its certificate must name the control plane's SPIFFE ID. A token
// made for another control plane (another root) fails here, before anything
// is written or installed. Every later request is verified the same way and
// presents the workload certificate (mTLS).
import https from 'node:https';
import type { PeerCertificate } from 'node:tls';
import { certificateSha256 } from '../../core/ca/ca-signer.ts';
import { JibeError } from '../../core/errors/errors.ts';
import type { JoinToken } from '../../platforms/vm/join-token.ts';
import { spiffeIdOf } from '../../proxy/identity/mesh-tls.ts';

const TIMEOUT_MS = 10_000;

export interface ControlPlaneTls {
  /** PEM roots to verify the control plane with. */
  roots: string[];
  /** The SPIFFE ID the control plane's certificate must carry. */
  controlPlane: string;
  /** Our workload certificate (mTLS), once we have one. */
  client?: { keyPem: string; certChainPem: string };
}

export interface FirstContact {
  /** The address (`host:port`) that answered. */
  address: string;
  trustDomain: string;
  /** The verified trust bundle (the pinned root among them). */
  roots: string[];
}

/** The answer of a JSON endpoint; JibeError from the control plane's error body otherwise. */
export async function callControlPlane<T>(address: string, method: string, path: string, body: unknown, tls: ControlPlaneTls | 'unverified'): Promise<T> {
  const { status, payload } = await request(address, method, path, body, tls);
  if (status < 200 || status > 299) {
    throw JibeError.fromJSON((payload as { error?: unknown })?.error ?? { code: 'JIBE_ERR_BAD_REQUEST', message: `HTTP ${status} from ${method} ${path}` });
  }
  return payload as T;
}

/** Finds and verifies the control plane the token names; tries its addresses in order. */
export async function firstContact(token: JoinToken): Promise<FirstContact> {
  const failures: string[] = [];
  for (const address of token.addresses) {
    let bundle: { trustDomain?: string; roots?: string[] };
    try {
      bundle = await callControlPlane(address, 'GET', '/api/v1/trust-bundle', undefined, 'unverified');
    } catch (err) {
      failures.push(`${address}: ${(err as Error).message}`);
      continue;
    }
    const roots = Array.isArray(bundle.roots) ? bundle.roots.filter((r) => typeof r === 'string') : [];
    const pinned = roots.find((r) => safeSha256(r) === token.rootSha256);
    if (!pinned) {
      throw new JibeError('JIBE_ERR_JOIN_TOKEN', `the control plane at ${address} does not hold the root this join token pins (SHA-256 ${token.rootSha256.slice(0, 16)}…; it has ${roots.map((r) => (safeSha256(r) ?? 'unreadable').slice(0, 16) + '…').join(', ') || 'none'}): the token was made for another control plane, or someone is in between`, {
        hint: 'create the token on the control plane this VM should join (`jibe vm token create`); nothing was installed',
      });
    }
    // Now the real check: the server proves it holds a certificate of the pinned root, for the control plane's identity.
    const verified = await callControlPlane<{ trustDomain?: string; roots?: string[] }>(address, 'GET', '/api/v1/trust-bundle', undefined, { roots: [pinned], controlPlane: token.controlPlane }).catch((err: Error) => {
      throw new JibeError('JIBE_ERR_JOIN_TOKEN', `the control plane at ${address} could not prove it is ${token.controlPlane} under the pinned root: ${err.message}`, {
        hint: 'create the token on the control plane this VM should join; nothing was installed',
      });
    });
    return { address, trustDomain: String(verified.trustDomain ?? bundle.trustDomain), roots: Array.isArray(verified.roots) ? verified.roots : roots };
  }
  throw new JibeError('JIBE_ERR_CONTROL_PLANE_UNREACHABLE', `no control plane address in the join token answered: ${failures.join('; ')}`, {
    hint: 'check that this VM reaches the control plane\'s TLS API port (default 15015) and that the control plane runs',
  });
}

function safeSha256(pem: string): string | undefined {
  try {
    return certificateSha256(pem);
  } catch {
    return undefined;
  }
}

function request(address: string, method: string, path: string, body: unknown, tls: ControlPlaneTls | 'unverified'): Promise<{ status: number; payload: unknown }> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const url = new URL(path, `https://${address}`);
  return new Promise((resolve, reject) => {
    const options: https.RequestOptions = {
      method,
      headers: text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) },
      minVersion: 'TLSv1.2',
      agent: false,
      timeout: TIMEOUT_MS,
    };
    if (tls === 'unverified') {
      // First contact only, to read the bundle the pin is checked against; nothing secret is sent.
      options.rejectUnauthorized = false;
    } else {
      options.ca = tls.roots;
      if (tls.client) {
        options.key = tls.client.keyPem;
        options.cert = tls.client.certChainPem;
      }
      options.checkServerIdentity = (_host: string, peer: PeerCertificate) => {
        const id = spiffeIdOf(peer);
        return id === tls.controlPlane ? undefined : new Error(`the server is ${id ?? 'not a SPIFFE identity'}, not ${tls.controlPlane}`);
      };
    }
    const req = https.request(url, options);
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (err: Error & { code?: string }) => {
      const tlsProblem = /certificate|self.signed|SPIFFE|not .*spiffe|UNABLE_TO|CERT_/i.test(`${err.code} ${err.message}`);
      reject(
        tlsProblem
          ? new JibeError('JIBE_ERR_UNAUTHENTICATED', `the control plane at ${address} failed TLS verification: ${err.message}`)
          : new JibeError('JIBE_ERR_CONTROL_PLANE_UNREACHABLE', `the control plane at ${address} did not answer (${err.code ?? err.message})`, {
              hint: 'the agent keeps serving with its current certificate and config, and retries',
            }),
      );
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        let payload: unknown = {};
        try {
          payload = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        } catch {
          // Reported by status.
        }
        resolve({ status: res.statusCode ?? 0, payload });
      });
    });
    req.end(text);
  });
}
