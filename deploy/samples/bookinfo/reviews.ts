// BookInfo `reviews`: two reviews of the book, in three versions whose differences
// make routing visible on the product page:
//   v1  no ratings, calls nothing
//   v2  calls `ratings`, black stars
//   v3  calls `ratings`, red stars
//
//   GET /reviews/:id → {id, podname, clustername, reviews: [{reviewer, text, rating?}]}
//   GET /health      → {status: "Reviews is healthy"}
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  getPeerJson,
  isReadMethod,
  mainOf,
  methodNotAllowed,
  parseProductId,
  peerBaseUrl,
  propagatedHeaders,
  requestPath,
  sendJson,
  silentLogger,
} from './bookinfo-common.ts';
import type { Logger } from './bookinfo-common.ts';

export const REVIEWS_VERSIONS = ['v1', 'v2', 'v3'] as const;
export type ReviewsVersion = (typeof REVIEWS_VERSIONS)[number];

export const RATINGS_UNAVAILABLE = 'Ratings service is currently unavailable';

export interface ReviewsOptions {
  version: ReviewsVersion;
  /** Reported as `podname`; defaults to `reviews-<version>`. */
  name?: string;
  /** Reported as `clustername`; defaults to env CLUSTER_NAME, else null. */
  clusterName?: string | null;
  /** Base URL of ratings; defaults to env RATINGS_URL, else http://ratings:9080. */
  ratingsUrl?: string;
  /**
   * How long to wait for ratings. The sample's v2 waits 10 s and v3 2.5 s; the
   * fault-injection task (7 s delay for jason) is built on that difference.
   */
  ratingsTimeoutMs?: number;
  log?: Logger;
}

export type Rating = { stars: number; color: string } | { error: string };

export interface Review {
  reviewer: string;
  text: string;
  rating?: Rating;
}

export interface ReviewsResponse {
  id: number;
  podname: string;
  clustername: string | null;
  reviews: Review[];
}

const REVIEWS: ReadonlyArray<Readonly<{ reviewer: string; text: string }>> = [
  {
    reviewer: 'Reviewer1',
    text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!',
  },
  {
    reviewer: 'Reviewer2',
    text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.',
  },
];

const STAR_COLOR: Record<ReviewsVersion, string | undefined> = { v1: undefined, v2: 'black', v3: 'red' };
const RATINGS_TIMEOUT_MS: Record<ReviewsVersion, number> = { v1: 0, v2: 10_000, v3: 2_500 };

export function isReviewsVersion(value: string): value is ReviewsVersion {
  return (REVIEWS_VERSIONS as readonly string[]).includes(value);
}

export function createServer(options: ReviewsOptions): Server {
  if (!isReviewsVersion(options.version)) {
    throw new Error(`reviews version must be one of ${REVIEWS_VERSIONS.join(', ')}, got '${String(options.version)}'`);
  }
  const version = options.version;
  const config = {
    version,
    podname: options.name ?? `reviews-${version}`,
    clustername: options.clusterName === undefined ? (process.env.CLUSTER_NAME ?? null) : options.clusterName,
    starColor: STAR_COLOR[version],
    ratingsBase: options.ratingsUrl ?? peerBaseUrl('ratings', 'RATINGS_URL'),
    ratingsTimeoutMs: options.ratingsTimeoutMs ?? RATINGS_TIMEOUT_MS[version],
    log: options.log ?? silentLogger,
  };

  return createHttpServer((req, res) => {
    handle(req, res, config).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  });
}

interface ReviewsConfig {
  podname: string;
  clustername: string | null;
  starColor: string | undefined;
  ratingsBase: string;
  ratingsTimeoutMs: number;
  log: Logger;
}

async function handle(req: IncomingMessage, res: ServerResponse, config: ReviewsConfig): Promise<void> {
  const path = requestPath(req);
  if (path !== '/health' && !path.startsWith('/reviews/')) return sendJson(res, 404, { error: 'not found' });
  if (!isReadMethod(req.method)) return methodNotAllowed(res, 'GET');
  if (path === '/health') return sendJson(res, 200, { status: 'Reviews is healthy' });

  const id = parseProductId(path.slice('/reviews/'.length));
  if (id === undefined) return sendJson(res, 400, { error: 'please provide numeric product id' });

  let stars: Record<string, unknown> | undefined;
  if (config.starColor !== undefined) stars = await fetchRatings(id, req, config);

  const body: ReviewsResponse = {
    id,
    podname: config.podname,
    clustername: config.clustername,
    reviews: REVIEWS.map((r) => {
      if (config.starColor === undefined) return { reviewer: r.reviewer, text: r.text };
      const count = stars?.[r.reviewer];
      const rating: Rating = typeof count === 'number' ? { stars: count, color: config.starColor } : { error: RATINGS_UNAVAILABLE };
      return { reviewer: r.reviewer, text: r.text, rating };
    }),
  };
  sendJson(res, 200, body);
}

/** The reviewer → stars map from ratings, or undefined when ratings cannot be had. */
async function fetchRatings(id: number, req: IncomingMessage, config: ReviewsConfig): Promise<Record<string, unknown> | undefined> {
  const url = `${config.ratingsBase}/ratings/${id}`;
  const result = await getPeerJson(url, propagatedHeaders(req.headers), config.ratingsTimeoutMs);
  if (!result.ok) {
    config.log(`unable to contact ${url}: ${result.reason}`);
    return undefined;
  }
  const ratings = (result.body as { ratings?: unknown } | null)?.ratings;
  if (typeof ratings !== 'object' || ratings === null) {
    config.log(`unexpected answer from ${url}: no ratings object`);
    return undefined;
  }
  return ratings as Record<string, unknown>;
}

if (import.meta.main) {
  mainOf(
    'reviews',
    (flags, log) => createServer({ version: flags.version as ReviewsVersion, name: flags.name, log }),
    REVIEWS_VERSIONS,
  );
}
