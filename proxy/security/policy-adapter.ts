// The in-process policy layer: an AuthorizationPolicy with action CUSTOM names
// a provider, and the adapter registered under that name decides the requests
// its rules match. Adapters are plugins in a registry keyed by name (as load
// balancers are): an unknown or duplicate name is a typed error, and a config
// naming an unknown provider is refused at apply.
import { JibeError } from '../../core/errors/errors.ts';
import type { RequestAttributes } from './request-attributes.ts';

export interface PolicyVerdict {
  allow: boolean;
  /** Denials: the status to answer with (default 403). */
  status?: number;
  /** Denials: the body to answer with (default `RBAC: access denied`). */
  body?: string;
  /** Denials: headers for the client's answer; allows: headers added to the upstream request. */
  headers?: Array<[string, string]>;
}

export interface PolicyAdapter {
  readonly name: string;
  /** Decides one request; a thrown error or rejected promise denies it (fail closed). */
  check(request: RequestAttributes): PolicyVerdict | Promise<PolicyVerdict>;
  /** Releases timers and connections. */
  close?(): void;
}

export const ALLOW: PolicyVerdict = Object.freeze({ allow: true });

export class PolicyAdapterRegistry {
  private readonly adapters = new Map<string, PolicyAdapter>();

  constructor(adapters: PolicyAdapter[] = []) {
    for (const a of adapters) this.register(a);
  }

  /** @throws JibeError JIBE_ERR_PLUGIN_DUPLICATE when the name is taken. */
  register(adapter: PolicyAdapter): void {
    if (this.adapters.has(adapter.name)) {
      throw new JibeError('JIBE_ERR_PLUGIN_DUPLICATE', `a policy adapter named ${JSON.stringify(adapter.name)} is already registered`, {
        hint: 'give each policy adapter (extension provider) its own name',
      });
    }
    this.adapters.set(adapter.name, adapter);
  }

  has(name: string): boolean {
    return this.adapters.has(name);
  }

  /** @throws JibeError JIBE_ERR_PLUGIN_UNKNOWN naming the registered adapters. */
  get(name: string): PolicyAdapter {
    const adapter = this.adapters.get(name);
    if (adapter === undefined) {
      throw new JibeError('JIBE_ERR_PLUGIN_UNKNOWN', `no policy adapter is registered as ${JSON.stringify(name)}`, {
        hint: this.adapters.size ? `registered: ${[...this.adapters.keys()].join(', ')}` : 'no policy adapters are registered on this proxy',
      });
    }
    return adapter;
  }

  names(): string[] {
    return [...this.adapters.keys()];
  }

  close(): void {
    for (const a of this.adapters.values()) a.close?.();
  }
}
