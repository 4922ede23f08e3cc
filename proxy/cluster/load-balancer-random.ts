// Uniform random choice over healthy hosts, or proportional to endpoint weights
// when they differ (cumulative weights, one random number, binary search).
import type { LoadBalancer, LoadBalancerInput } from './load-balancer.ts';
import type { UpstreamHost } from './upstream-pool.ts';

class UniformRandom implements LoadBalancer {
  private readonly hosts: readonly UpstreamHost[];
  private readonly random: () => number;

  constructor(hosts: readonly UpstreamHost[], random: () => number) {
    this.hosts = hosts;
    this.random = random;
  }

  pick(): UpstreamHost | undefined {
    const n = this.hosts.length;
    if (n === 0) return undefined;
    return this.hosts[Math.floor(this.random() * n)];
  }
}

class WeightedRandom implements LoadBalancer {
  private readonly hosts: readonly UpstreamHost[];
  private readonly cumulative: Float64Array;
  private readonly random: () => number;

  constructor(hosts: readonly UpstreamHost[], weights: readonly number[], random: () => number) {
    this.hosts = hosts;
    this.random = random;
    this.cumulative = new Float64Array(weights.length);
    let sum = 0;
    for (let i = 0; i < weights.length; i++) this.cumulative[i] = sum += weights[i];
  }

  pick(): UpstreamHost | undefined {
    const n = this.hosts.length;
    if (n === 0) return undefined;
    const target = this.random() * this.cumulative[n - 1];
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.cumulative[mid] > target) hi = mid;
      else lo = mid + 1;
    }
    return this.hosts[lo];
  }
}

export function createRandom(input: LoadBalancerInput): LoadBalancer {
  if (input.weights !== undefined) return new WeightedRandom(input.hosts, input.weights, input.random);
  return new UniformRandom(input.hosts, input.random);
}
