// Least request as Envoy does it: the power of two choices. Two distinct hosts
// are sampled at random and the one with fewer requests in flight wins; this
// gets close to "least loaded" without scanning every host, and avoids the
// herd that a strict minimum causes when many proxies see the same counts.
// In-flight counts live on the hosts, so they survive balancer rebuilds.
import type { LoadBalancer, LoadBalancerInput } from './load-balancer.ts';
import type { UpstreamHost } from './upstream-pool.ts';

class LeastRequest implements LoadBalancer {
  private readonly hosts: readonly UpstreamHost[];
  private readonly random: () => number;

  constructor(hosts: readonly UpstreamHost[], random: () => number) {
    this.hosts = hosts;
    this.random = random;
  }

  pick(): UpstreamHost | undefined {
    const hosts = this.hosts;
    const n = hosts.length;
    if (n <= 1) return hosts[0];
    const i = Math.floor(this.random() * n);
    let j = Math.floor(this.random() * (n - 1));
    if (j >= i) j++;
    const a = hosts[i];
    const b = hosts[j];
    return b.active < a.active ? b : a;
  }
}

export function createLeastRequest(input: LoadBalancerInput): LoadBalancer {
  return new LeastRequest(input.hosts, input.random);
}
