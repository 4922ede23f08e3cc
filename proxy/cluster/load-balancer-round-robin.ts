// Round robin over healthy hosts. Starts at a random offset so that many
// proxies restarted together do not all hit the first endpoint. With unequal
// endpoint weights it uses smooth weighted round robin (nginx's algorithm):
// the same proportions, interleaved instead of in bursts.
import type { LoadBalancer, LoadBalancerInput } from './load-balancer.ts';
import type { UpstreamHost } from './upstream-pool.ts';

class RoundRobin implements LoadBalancer {
  private readonly hosts: readonly UpstreamHost[];
  private next: number;

  constructor(hosts: readonly UpstreamHost[], start: number) {
    this.hosts = hosts;
    this.next = start;
  }

  pick(): UpstreamHost | undefined {
    const hosts = this.hosts;
    if (hosts.length === 0) return undefined;
    if (this.next >= hosts.length) this.next = 0;
    return hosts[this.next++];
  }
}

class SmoothWeightedRoundRobin implements LoadBalancer {
  private readonly hosts: readonly UpstreamHost[];
  private readonly weights: readonly number[];
  private readonly current: Float64Array;
  private readonly total: number;

  constructor(hosts: readonly UpstreamHost[], weights: readonly number[]) {
    this.hosts = hosts;
    this.weights = weights;
    this.current = new Float64Array(hosts.length);
    let total = 0;
    for (const w of weights) total += w;
    this.total = total;
  }

  pick(): UpstreamHost | undefined {
    const n = this.hosts.length;
    if (n === 0 || this.total <= 0) return undefined;
    let best = 0;
    for (let i = 0; i < n; i++) {
      this.current[i] += this.weights[i];
      if (this.current[i] > this.current[best]) best = i;
    }
    this.current[best] -= this.total;
    return this.hosts[best];
  }
}

export function createRoundRobin(input: LoadBalancerInput): LoadBalancer {
  if (input.weights !== undefined) return new SmoothWeightedRoundRobin(input.hosts, input.weights);
  return new RoundRobin(input.hosts, Math.floor(input.random() * input.hosts.length));
}
