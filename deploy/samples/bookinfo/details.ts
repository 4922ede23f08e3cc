// BookInfo `details`: the book's bibliographic record. Calls nothing.
//
//   GET /details/:id → {id, author, year, type, pages, publisher, language, ISBN-10, ISBN-13}
//   GET /health      → {status: "Details is healthy"}
import { createServer as createHttpServer } from 'node:http';
import type { Server } from 'node:http';
import { isReadMethod, mainOf, methodNotAllowed, parseProductId, requestPath, sendJson } from './bookinfo-common.ts';

export interface DetailsOptions {
  version?: string;
  name?: string;
}

export interface BookDetails {
  id: number;
  author: string;
  year: number;
  type: string;
  pages: number;
  publisher: string;
  language: string;
  'ISBN-10': string;
  'ISBN-13': string;
}

/** The sample has one book, The Comedy of Errors, whatever the id. */
export function bookDetails(id: number): BookDetails {
  return {
    id,
    author: 'William Shakespeare',
    year: 1595,
    type: 'paperback',
    pages: 200,
    publisher: 'PublisherA',
    language: 'English',
    'ISBN-10': '1234567890',
    'ISBN-13': '123-1234567890',
  };
}

export function createServer(_options: DetailsOptions = {}): Server {
  return createHttpServer((req, res) => {
    const path = requestPath(req);
    if (path !== '/health' && !path.startsWith('/details/')) return sendJson(res, 404, { error: 'not found' });
    if (!isReadMethod(req.method)) return methodNotAllowed(res, 'GET');
    if (path === '/health') return sendJson(res, 200, { status: 'Details is healthy' });

    const id = parseProductId(path.slice('/details/'.length));
    if (id === undefined) return sendJson(res, 400, { error: 'please provide numeric product id' });
    sendJson(res, 200, bookDetails(id));
  });
}

if (import.meta.main) {
  mainOf('details', (flags) => createServer({ version: flags.version, name: flags.name }));
}
