// Runs a sidecar proxy in capture mode inside a test's network namespace, on
// the config given as JSON (argv[2]), and prints its ports once it serves.
// Started by tcp-capture-netns.test.ts through `ip netns exec … setpriv`.
import { startProxy } from '../../../proxy/proxy.ts';
import type { ProxyResource } from '../../../core/model/proxy-config.ts';

const resources = JSON.parse(process.argv[2]) as ProxyResource[];
const proxy = await startProxy({
  node: { id: 'sidecar~app.default', type: 'sidecar', namespace: 'default', workload: 'app', labels: {} },
  outboundPort: 15001,
  inboundCapturePort: 15006,
  adminPort: 15000,
  captureMode: true,
  drainTimeoutMs: 100,
});
await proxy.apply({ version: '1', nonce: '1', full: true, upserts: resources, removes: [] });
process.stdout.write(`ready ${JSON.stringify(proxy.ports)}\n`);
process.stdin.on('data', (d) => {
  if (d.toString().includes('stats')) process.stdout.write(`stats ${JSON.stringify({ loop: proxy.stats.tcp_loop_refused, blackhole: proxy.stats.tcp_blackhole_cx_total, passthrough: proxy.stats.tcp_passthrough_cx_total })}\n`);
});
process.stdin.on('end', () => void proxy.close().then(() => process.exit(0)));
