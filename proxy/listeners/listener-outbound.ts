// The sidecar's outbound listener. Apps reach it two ways: through iptables
// capture (plain requests carrying a Host header) or by using it as an
// explicit HTTP proxy — absolute-form targets (`GET http://reviews:9080/x`,
// as node's http client sends with NODE_USE_ENV_PROXY) and CONNECT tunnels
// (as fetch does). A tunnel is answered 200 and the bytes that follow on its
// socket are read as requests again, so the requests inside it are routed like any other by
// their Host headers.
import { OUTBOUND_ROUTE_CONFIG } from '../../core/model/proxy-config.ts';
import type { ProxyLogger } from '../proxy-logger.ts';
import type { Dispatch } from '../router/router.ts';
import type { ProxyStats } from '../stats/proxy-stats.ts';
import { HttpListener } from './listener-http.ts';
import type { StateHolder } from './listener-http.ts';

export interface OutboundListenerOptions {
  address: string;
  /** 0 binds an ephemeral port. */
  port: number;
  holder: StateHolder;
  dispatch: Dispatch;
  stats: ProxyStats;
  logger: ProxyLogger;
}

const TUNNEL_ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
const TUNNEL_BAD_TARGET = 'HTTP/1.1 400 Bad Request\r\nserver: jibe\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';
const AUTHORITY_FORM = /^(\[[0-9a-fA-F:.]+\]|[^\s/:@[\]]+):\d{1,5}$/;

export function createOutboundListener(options: OutboundListenerOptions): HttpListener {
  const listener = new HttpListener({
    kind: 'outbound',
    name: OUTBOUND_ROUTE_CONFIG,
    address: options.address,
    port: options.port,
    edge: false,
    holder: options.holder,
    routeTable: (state) => state.outbound,
    dispatch: options.dispatch,
    stats: options.stats,
    logger: options.logger,
    connect: (l, conn, target) => {
      const socket = conn.socket;
      if (l.draining || !AUTHORITY_FORM.test(target)) {
        socket.end(TUNNEL_BAD_TARGET);
        return false;
      }
      options.stats.downstream_cx_connect_tunnel++;
      socket.write(TUNNEL_ESTABLISHED, 'latin1');
      return true;
    },
  });
  return listener;
}
