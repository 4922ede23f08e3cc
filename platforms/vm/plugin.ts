// Registers the vm platform: workloads that join by calling the control plane.
import { JibeError } from '../../core/errors/errors.ts';
import type { Plugin } from '../../core/plugins/plugin-tokens.ts';
import type { PlatformRegistry } from '../../core/registry/platform-registry.ts';
import type { WorkloadRegistrar } from '../../core/registry/workload-registrar.ts';

export const vmRegistryPlugin: Plugin<PlatformRegistry & WorkloadRegistrar> = {
  name: 'vm',
  async create({ state, settings, logger }) {
    if (!state) throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', 'the vm platform needs a state store');
    const { VmRegistry } = await import('./registry-vm.ts');
    const log = logger?.child({ component: 'vm-join-tokens' });
    return new VmRegistry(state, {
      domain: settings.domain,
      trustDomain: settings.trustDomain,
      joinTokenPruning: { log: (message, fields) => log?.info(fields ?? {}, message) },
    });
  },
};
