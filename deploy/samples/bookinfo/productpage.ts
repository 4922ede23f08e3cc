// BookInfo `productpage`: the front end. It calls `details` and `reviews` (and,
// for the API, `ratings`), and renders what it gets — or says which part is
// unavailable, so a failing backend degrades the page instead of breaking it.
//
//   GET  /productpage                     the HTML page
//   GET  / , /index.html                  a landing page
//   POST /login                           form username → cookie user=<name>, back to /productpage
//   GET  /logout                          clears the cookie
//   GET  /api/v1/products[/:id[/reviews|/ratings]]
//   GET  /static/bookinfo.css, /health
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  BodyTooLargeError,
  getPeerJson,
  isReadMethod,
  mainOf,
  methodNotAllowed,
  peerBaseUrl,
  propagatedHeaders,
  readBody,
  requestPath,
  sendJson,
  sendText,
  silentLogger,
} from './bookinfo-common.ts';
import type { Logger, PeerResult } from './bookinfo-common.ts';
import { STYLESHEET, renderIndexPage, renderProductPage } from './productpage-view.ts';
import type { DetailsData, PageSection, Product, ReviewsData, ServiceTreeNode } from './productpage-view.ts';

export const DETAILS_UNAVAILABLE = 'Sorry, product details are currently unavailable for this book.';
export const REVIEWS_UNAVAILABLE = 'Sorry, product reviews are currently unavailable for this book.';
export const RATINGS_UNAVAILABLE = 'Sorry, product ratings are currently unavailable for this book.';

export interface ProductPageOptions {
  version?: string;
  name?: string;
  /** Base URLs of the peers; default to env DETAILS_URL / REVIEWS_URL / RATINGS_URL, else http://<service>:9080. */
  detailsUrl?: string;
  reviewsUrl?: string;
  ratingsUrl?: string;
  /** Per-call timeout; 3 s as in the sample. */
  timeoutMs?: number;
  log?: Logger;
}

export const PRODUCTS: readonly Product[] = Object.freeze([
  {
    id: 0,
    title: 'The Comedy of Errors',
    descriptionHtml:
      '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: The Comedy of Errors is one of ' +
      "<b>William Shakespeare's</b> early plays. It is his shortest and one of his most farcical comedies, with a major " +
      'part of the humour coming from slapstick and mistaken identity, in addition to puns and word play.',
  },
]);

const DEFAULT_TIMEOUT_MS = 3000;
/**
 * The sample calls reviews twice before giving up — a retry in the app that the
 * fault-injection task exposes (2 × 3 s is less than the 7 s delay injected for
 * jason, so his page shows reviews unavailable). Users follow that task, so keep it.
 */
const REVIEWS_ATTEMPTS = 2;
const USER_COOKIE = 'user';
/** Printable ASCII only: the name travels in the `end-user` header. */
const VALID_USER = /^[\x20-\x7e]{1,64}$/;

interface Peers {
  details: string;
  reviews: string;
  ratings: string;
  timeoutMs: number;
  log: Logger;
}

export function createServer(options: ProductPageOptions = {}): Server {
  const peers: Peers = {
    details: options.detailsUrl ?? peerBaseUrl('details', 'DETAILS_URL'),
    reviews: options.reviewsUrl ?? peerBaseUrl('reviews', 'REVIEWS_URL'),
    ratings: options.ratingsUrl ?? peerBaseUrl('ratings', 'RATINGS_URL'),
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    log: options.log ?? silentLogger,
  };
  const serviceTree: ServiceTreeNode = {
    name: 'productpage',
    endpoint: 'productpage',
    children: [
      { name: peers.details, endpoint: 'details', children: [] },
      { name: peers.reviews, endpoint: 'reviews', children: [{ name: peers.ratings, endpoint: 'ratings', children: [] }] },
    ],
  };

  return createHttpServer((req, res) => {
    handle(req, res, peers, serviceTree).catch((err: unknown) => {
      peers.log(`request ${req.method} ${req.url} failed: ${(err as Error).message}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, peers: Peers, serviceTree: ServiceTreeNode): Promise<void> {
  const path = requestPath(req);
  if (path === '/login') return login(req, res);
  if (!isReadMethod(req.method)) return methodNotAllowed(res, 'GET');

  switch (path) {
    case '/':
    case '/index.html':
      return sendText(res, 200, 'text/html; charset=utf-8', renderIndexPage(serviceTree));
    case '/health':
      return sendText(res, 200, 'text/plain; charset=utf-8', 'Product page is healthy');
    case '/logout':
      return redirect(res, '/productpage', `${USER_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`);
    case '/productpage':
      return productPage(req, res, peers);
    case '/static/bookinfo.css':
      return sendText(res, 200, 'text/css; charset=utf-8', STYLESHEET, { 'cache-control': 'public, max-age=300' });
    case '/api/v1/products':
      return sendJson(res, 200, PRODUCTS);
  }
  if (path.startsWith('/api/v1/products/')) return productApi(req, res, peers, path.slice('/api/v1/products/'.length));
  sendJson(res, 404, { error: 'not found' });
}

async function productPage(req: IncomingMessage, res: ServerResponse, peers: Peers): Promise<void> {
  const user = signedInUser(req);
  const headers = forwardHeaders(req, user);
  const product = PRODUCTS[0];
  const [details, reviews] = await Promise.all([
    callPeer(peers, `${peers.details}/details/${product.id}`, headers, 1),
    callPeer(peers, `${peers.reviews}/reviews/${product.id}`, headers, REVIEWS_ATTEMPTS),
  ]);
  const html = renderProductPage({
    product,
    details: section<DetailsData>(details, DETAILS_UNAVAILABLE),
    reviews: section<ReviewsData>(reviews, REVIEWS_UNAVAILABLE),
    user,
  });
  sendText(res, 200, 'text/html; charset=utf-8', html);
}

/** `/api/v1/products/:id`, `…/:id/reviews`, `…/:id/ratings`: the peers' JSON, passed through. */
async function productApi(req: IncomingMessage, res: ServerResponse, peers: Peers, rest: string): Promise<void> {
  const [rawId, what, extra] = rest.split('/');
  if (rawId === '' || extra !== undefined) return sendJson(res, 404, { error: 'not found' });
  // The id goes to the backend as given (it answers 400 to a bad one), as in the sample.
  const id = encodeURIComponent(decodeSegment(rawId));
  const headers = forwardHeaders(req, signedInUser(req));
  let result: PeerResult;
  let unavailable: string;
  if (what === undefined) {
    result = await callPeer(peers, `${peers.details}/details/${id}`, headers, 1);
    unavailable = DETAILS_UNAVAILABLE;
  } else if (what === 'reviews') {
    result = await callPeer(peers, `${peers.reviews}/reviews/${id}`, headers, REVIEWS_ATTEMPTS);
    unavailable = REVIEWS_UNAVAILABLE;
  } else if (what === 'ratings') {
    result = await callPeer(peers, `${peers.ratings}/ratings/${id}`, headers, 1);
    unavailable = RATINGS_UNAVAILABLE;
  } else {
    return sendJson(res, 404, { error: 'not found' });
  }
  if (result.ok) return sendJson(res, 200, result.body);
  sendJson(res, result.status ?? 500, { error: unavailable });
}

async function callPeer(peers: Peers, url: string, headers: Record<string, string>, attempts: number): Promise<PeerResult> {
  let result: PeerResult | undefined;
  for (let i = 0; i < attempts; i++) {
    result = await getPeerJson(url, headers, peers.timeoutMs);
    if (result.ok) return result;
    peers.log(`unable to contact ${url}: ${result.reason}`);
  }
  return result as PeerResult;
}

function section<T>(result: PeerResult, unavailable: string): PageSection<T> {
  if (result.ok && typeof result.body === 'object' && result.body !== null) return { ok: true, data: result.body as T };
  return { ok: false, error: unavailable };
}

/**
 * The headers productpage sends its peers: the tracing and session headers of the
 * request it serves, plus `end-user` naming the signed-in user — the header
 * Istio's `jason` routing rules match on.
 */
export function forwardHeaders(req: IncomingMessage, user: string | undefined): Record<string, string> {
  const headers = propagatedHeaders(req.headers);
  if (user !== undefined) headers['end-user'] = user;
  return headers;
}

/** The user named by the `user` cookie, if it is one productpage could have set. */
export function signedInUser(req: IncomingMessage): string | undefined {
  const cookie = req.headers.cookie;
  if (!cookie) return undefined;
  for (const part of cookie.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== USER_COOKIE) continue;
    let value = part.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    const user = decodeSegment(value);
    return user !== '' && VALID_USER.test(user) ? user : undefined;
  }
  return undefined;
}

async function login(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
  let body: string;
  try {
    body = await readBody(req, 16 * 1024);
  } catch (err) {
    if (err instanceof BodyTooLargeError) return sendJson(res, 413, { error: err.message });
    throw err;
  }
  // The form posts urlencoded; curl users may post the same fields as the query string.
  const form = new URLSearchParams(body);
  const query = new URLSearchParams((req.url ?? '').split('?')[1] ?? '');
  const user = (form.get('username') ?? query.get('username') ?? '').trim();
  if (user === '' || !VALID_USER.test(user)) {
    return sendText(res, 400, 'text/plain; charset=utf-8', 'username must be 1 to 64 printable ASCII characters\n');
  }
  // Any password is accepted: the sample signs users in only to route on their name.
  redirect(res, '/productpage', `${USER_COOKIE}=${encodeURIComponent(user)}; Path=/; HttpOnly; SameSite=Lax`);
}

function redirect(res: ServerResponse, location: string, setCookie: string): void {
  res.writeHead(302, { location, 'set-cookie': setCookie, 'content-length': 0 });
  res.end();
}

function decodeSegment(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

if (import.meta.main) {
  mainOf('productpage', (flags, log) => createServer({ version: flags.version, name: flags.name, log }));
}
