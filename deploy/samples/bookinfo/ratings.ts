// BookInfo `ratings`: the star ratings each reviewer gave a book. Calls nothing.
//
//   GET  /ratings/:id  → {id, ratings: {Reviewer1: 5, Reviewer2: 4}}
//   POST /ratings/:id  ← {"Reviewer1": 3, ...}  replaces the ratings of that book (in memory)
//   GET  /health       → {status: "Ratings is healthy"}
import { createServer as createHttpServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  BodyTooLargeError,
  isReadMethod,
  mainOf,
  methodNotAllowed,
  parseProductId,
  readBody,
  requestPath,
  sendJson,
} from './bookinfo-common.ts';

export interface RatingsOptions {
  version?: string;
  name?: string;
}

export type Ratings = Record<string, number>;

const DEFAULT_RATINGS: Readonly<Ratings> = Object.freeze({ Reviewer1: 5, Reviewer2: 4 });

export function createServer(_options: RatingsOptions = {}): Server {
  // Ratings posted by users, per product; like the sample's v1, they live in memory.
  const posted = new Map<number, Ratings>();

  return createHttpServer((req, res) => {
    handle(req, res, posted).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, { error: (err as Error).message });
      else res.destroy();
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, posted: Map<number, Ratings>): Promise<void> {
  const path = requestPath(req);
  if (path === '/health') {
    if (!isReadMethod(req.method)) return methodNotAllowed(res, 'GET');
    return sendJson(res, 200, { status: 'Ratings is healthy' });
  }
  if (!path.startsWith('/ratings/')) return sendJson(res, 404, { error: 'not found' });

  const id = parseProductId(path.slice('/ratings/'.length));
  if (id === undefined) return sendJson(res, 400, { error: 'please provide numeric product ID' });

  if (isReadMethod(req.method)) {
    return sendJson(res, 200, { id, ratings: posted.get(id) ?? DEFAULT_RATINGS });
  }
  if (req.method !== 'POST') return methodNotAllowed(res, 'GET, POST');

  let body: string;
  try {
    body = await readBody(req);
  } catch (err) {
    if (err instanceof BodyTooLargeError) return sendJson(res, 413, { error: err.message });
    throw err;
  }
  const ratings = parseRatings(body);
  if (!ratings) {
    return sendJson(res, 400, { error: 'please provide valid ratings JSON: an object of reviewer → stars (0 to 5)' });
  }
  posted.set(id, ratings);
  return sendJson(res, 200, { id, ratings });
}

function parseRatings(body: string): Ratings | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const ratings: Ratings = {};
  for (const [reviewer, stars] of Object.entries(value)) {
    if (!Number.isInteger(stars) || stars < 0 || stars > 5) return undefined;
    ratings[reviewer] = stars;
  }
  return ratings;
}

if (import.meta.main) {
  mainOf('ratings', (flags) => createServer({ version: flags.version, name: flags.name }));
}
