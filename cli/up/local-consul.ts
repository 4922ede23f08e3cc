// A Consul dev agent (in-memory server) for `jibe up --platforms …,consul`,
// on free loopback ports, supervised with the rest of the local mesh. Ready
// once it has a leader and answers the catalog, as the integration tests wait.
import { ConsulClient } from '../../platforms/consul/consul-client.ts';
import type { Child, ProcessSupervisor } from './process-supervisor.ts';
import { PEER_LAUNCHER, peerBinary } from './local-peers.ts';
import { freePort } from './ports.ts';

export interface LocalConsul {
  /** HTTP API, `http://127.0.0.1:<port>`. */
  address: string;
  datacenter: string;
  nodeName: string;
  client: ConsulClient;
  child: Child;
}

export const LOCAL_CONSUL_DATACENTER = 'dc1';
export const LOCAL_CONSUL_NODE = 'jibe-local';

export async function startLocalConsul(supervisor: ProcessSupervisor, waitReady: (check: () => Promise<boolean>, child: Child, what: string) => Promise<void>): Promise<LocalConsul> {
  const binary = peerBinary('consul');
  const [http, serfLan, serfWan, server] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const child = supervisor.start('consul', [
    PEER_LAUNCHER, binary,
    'agent', '-dev', '-client', '127.0.0.1', '-bind', '127.0.0.1',
    '-datacenter', LOCAL_CONSUL_DATACENTER, '-node', LOCAL_CONSUL_NODE,
    '-http-port', String(http), '-dns-port', '-1', '-grpc-port', '-1', '-grpc-tls-port', '-1',
    '-serf-lan-port', String(serfLan), '-serf-wan-port', String(serfWan), '-server-port', String(server),
    '-log-level', 'warn',
  ]);
  const address = `http://127.0.0.1:${http}`;
  const client = new ConsulClient({ address });
  await waitReady(async () => {
    try {
      const leader = await client.get<string>('/v1/status/leader', { timeoutMs: 2_000 });
      if (!leader.body) return false;
      await client.get('/v1/catalog/services', { timeoutMs: 2_000 });
      return true;
    } catch {
      return false;
    }
  }, child, 'the Consul agent to elect itself leader');
  return { address, datacenter: LOCAL_CONSUL_DATACENTER, nodeName: LOCAL_CONSUL_NODE, client, child };
}
