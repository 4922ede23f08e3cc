// Local overrides of the listeners the control plane sends: where the proxy
// must bind differently from what the mesh-wide config says (the local mesh of
// `jibe up` binds its gateway on loopback, and on another port in tests).
import type { ConfigUpdate, ListenerResource } from '../../core/model/proxy-config.ts';

export interface ListenerOverrides {
  /** Bind every config listener to this address instead of the one in config. */
  address?: string;
  /** Config port → port actually bound. */
  ports?: Record<number, number>;
}

export function overrideListeners(update: ConfigUpdate, overrides: ListenerOverrides | undefined): ConfigUpdate {
  if (!overrides || (!overrides.address && !overrides.ports)) return update;
  const upserts = update.upserts.map((r) => (r.type === 'listener' ? overrideOne(r, overrides) : r));
  return { ...update, upserts };
}

function overrideOne(listener: ListenerResource, overrides: ListenerOverrides): ListenerResource {
  return {
    ...listener,
    address: overrides.address ?? listener.address,
    port: overrides.ports?.[listener.port] ?? listener.port,
  };
}
