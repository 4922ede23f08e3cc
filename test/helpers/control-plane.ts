// A real control plane in the test process: the plugins `jibe control-plane`
// registers, file stores in `dataDir`, every port ephemeral on loopback, the
// TLS ports off unless a test asks for them. Tests pass only what differs.
import { pino } from 'pino';
import { registerPlugins } from '../../cli/plugins.ts';
import { startControlPlane } from '../../core/control-plane.ts';
import type { ControlPlaneOptions, RunningControlPlane } from '../../core/control-plane.ts';
import { DEFAULT_MESH_SETTINGS } from '../../core/mesh/mesh-snapshot.ts';

export type TestControlPlaneOptions = Partial<ControlPlaneOptions> & { dataDir: string };

export function startTestControlPlane(options: TestControlPlaneOptions): Promise<RunningControlPlane> {
  return startControlPlane({
    container: registerPlugins(),
    settings: DEFAULT_MESH_SETTINGS,
    host: '127.0.0.1',
    discoveryPort: 0,
    apiPort: 0,
    configStore: 'file',
    stateStore: 'file',
    platforms: ['vm'],
    logger: pino({ level: 'silent' }),
    ...options,
  });
}
