// PASSTHROUGH (Envoy's ORIGINAL_DST): the request goes where the client meant
// to send it before capture redirected it to the proxy — the outbound capture
// listener remembers that address on the connection (SO_ORIGINAL_DST). A
// request that did not come through capture (an explicit-proxy client, the
// gateway) has none; then the cluster's listed endpoints are balanced round
// robin, which is what a PASSTHROUGH cluster with explicit endpoints means.
import { downstreamSocket } from '../http/downstream-socket.ts';
import type { Exchange } from '../http/exchange.ts';
import { rememberedOriginalDestination } from '../tcp/original-destination.ts';
import type { LoadBalancer, LoadBalancerInput } from './load-balancer.ts';
import { createRoundRobin } from './load-balancer-round-robin.ts';
import type { UpstreamHost } from './upstream-pool.ts';

class Passthrough implements LoadBalancer {
  private readonly fallback: LoadBalancer;
  private readonly hostOf: ((address: string, port: number) => UpstreamHost) | undefined;

  constructor(input: LoadBalancerInput) {
    this.fallback = createRoundRobin(input);
    this.hostOf = input.hostOf;
  }

  pick(ex?: Exchange): UpstreamHost | undefined {
    if (ex !== undefined && this.hostOf !== undefined) {
      const dst = rememberedOriginalDestination(downstreamSocket(ex));
      if (dst !== undefined) return this.hostOf(dst.address, dst.port);
    }
    return this.fallback.pick();
  }
}

export function createPassthrough(input: LoadBalancerInput): LoadBalancer {
  return new Passthrough(input);
}
