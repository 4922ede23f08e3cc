// Request mirroring (Istio mirror + mirrorPercentage): whether this request
// gets a shadow copy. The copy's Host gets Envoy's `-shadow` suffix so the
// mirror target can tell shadow traffic apart; its answer is discarded.
import { sampled } from './fault-injection.ts';

/** Whether to mirror one request, `percentage` 0–100 with fractions (absent in Istio = 100). */
export function shouldMirror(percentage: number, random: () => number): boolean {
  return sampled(percentage, random);
}

/** The authority a mirrored request carries: `reviews:9080` → `reviews-shadow:9080` (as Envoy). */
export function shadowAuthority(authority: string): string {
  if (authority.startsWith('[')) {
    const end = authority.indexOf(']');
    return end < 0 ? authority + '-shadow' : authority.slice(0, end + 1) + '-shadow' + authority.slice(end + 1);
  }
  const colon = authority.lastIndexOf(':');
  return colon < 0 ? authority + '-shadow' : authority.slice(0, colon) + '-shadow' + authority.slice(colon);
}
