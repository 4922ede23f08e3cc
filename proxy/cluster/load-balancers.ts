// The built-in balancers, registered under the LbPolicy names the control
// plane sends. PASSTHROUGH clusters (original destination) are balanced
// round robin over whatever endpoints they list until original-destination
// forwarding lands.
import { LoadBalancerRegistry } from './load-balancer.ts';
import { createLeastRequest } from './load-balancer-least-request.ts';
import { createRandom } from './load-balancer-random.ts';
import { createRoundRobin } from './load-balancer-round-robin.ts';

export function createDefaultLoadBalancerRegistry(): LoadBalancerRegistry {
  const registry = new LoadBalancerRegistry();
  registry.register('ROUND_ROBIN', createRoundRobin);
  registry.register('LEAST_REQUEST', createLeastRequest);
  registry.register('RANDOM', createRandom);
  registry.register('PASSTHROUGH', createRoundRobin);
  return registry;
}

export const defaultLoadBalancers = createDefaultLoadBalancerRegistry();
