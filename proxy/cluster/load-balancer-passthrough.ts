// PASSTHROUGH (Envoy's ORIGINAL_DST): the request goes where the client meant
// to send it before capture redirected it to the proxy. Recovering that
// address is the capture side's job (SO_ORIGINAL_DST, owned by proxy/tcp);
// it plugs in here with setOriginalDestinationResolver. Until a resolver
// answers for an exchange, the cluster's listed endpoints are balanced round
// robin, which is what a PASSTHROUGH cluster with explicit endpoints means.
import type { Exchange } from '../http/exchange.ts';
import type { LoadBalancer, LoadBalancerInput } from './load-balancer.ts';
import { createRoundRobin } from './load-balancer-round-robin.ts';
import type { UpstreamHost } from './upstream-pool.ts';

export interface OriginalDestination {
  address: string;
  port: number;
}

/** Where the exchange was originally headed, or undefined when unknown. */
export type OriginalDestinationResolver = (ex: Exchange) => OriginalDestination | undefined;

let resolver: OriginalDestinationResolver | undefined;

/** Installs (or, with undefined, removes) how PASSTHROUGH clusters learn an exchange's original destination. */
export function setOriginalDestinationResolver(r: OriginalDestinationResolver | undefined): void {
  resolver = r;
}

class Passthrough implements LoadBalancer {
  private readonly fallback: LoadBalancer;
  private readonly hostOf: ((address: string, port: number) => UpstreamHost) | undefined;

  constructor(input: LoadBalancerInput) {
    this.fallback = createRoundRobin(input);
    this.hostOf = input.hostOf;
  }

  pick(ex?: Exchange): UpstreamHost | undefined {
    if (ex !== undefined && resolver !== undefined && this.hostOf !== undefined) {
      const dst = resolver(ex);
      if (dst !== undefined) return this.hostOf(dst.address, dst.port);
    }
    return this.fallback.pick();
  }
}

export function createPassthrough(input: LoadBalancerInput): LoadBalancer {
  return new Passthrough(input);
}
