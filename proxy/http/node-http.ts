// node:http, loaded with require rather than an ESM import. An ESM import of a
// builtin builds its module namespace by reading every export, and node:http's
// lazy exports (WebSocket, EventSource, …) pull in undici: about 15 MB of RSS a
// sidecar never uses. Types still come from the ordinary `import type`.
import { createRequire } from 'node:module';
import type * as Http from 'node:http';

const http = createRequire(import.meta.url)('node:http') as typeof Http;

export default http;
