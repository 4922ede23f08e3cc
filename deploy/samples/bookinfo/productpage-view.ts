// The HTML of BookInfo's product page: the same sections, words and behaviour as
// Istio's sample (title, summary, Book Details, Book Reviews with stars, the
// "Reviews served by" line, the sign-in form), without its CSS framework.
// Every value that comes from a peer or a cookie is escaped: the page must stay
// intact whatever a misbehaving backend (or a fault-injection rule) sends.

export interface Product {
  id: number;
  title: string;
  /** Trusted, authored HTML (a link and bold text), rendered unescaped. */
  descriptionHtml: string;
}

export interface PageSection<T> {
  ok: boolean;
  /** The peer's answer when ok. */
  data?: T;
  /** The message to show when not ok. */
  error?: string;
}

export interface DetailsData {
  author?: unknown;
  year?: unknown;
  type?: unknown;
  pages?: unknown;
  publisher?: unknown;
  language?: unknown;
  'ISBN-10'?: unknown;
  'ISBN-13'?: unknown;
}

export interface ReviewsData {
  podname?: unknown;
  clustername?: unknown;
  reviews?: unknown;
}

export interface ProductPageModel {
  product: Product;
  details: PageSection<DetailsData>;
  reviews: PageSection<ReviewsData>;
  /** The signed-in user, from the `user` cookie. */
  user?: string;
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const MAX_STARS = 5;
const COLOR = /^[a-z]{1,20}$/i;

function head(title: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${escapeHtml(title)}</title>
<link rel="stylesheet" href="/static/bookinfo.css">
</head>
<body>
`;
}

function nav(user: string | undefined): string {
  const session = user
    ? `<span class="user">Signed in as <strong>${escapeHtml(user)}</strong></span> <a class="button" href="/logout">Sign out</a>`
    : `<form class="login" method="post" action="/login" name="login_form">
  <label>Username <input name="username" required></label>
  <label>Password <input name="passwd" type="password"></label>
  <button type="submit">Sign in</button>
</form>`;
  return `<nav><a class="brand" href="/productpage">BookInfo Sample</a>${session}</nav>\n`;
}

function detailsSection(section: PageSection<DetailsData>): string {
  if (!section.ok || !section.data) {
    return `<section class="details">
<h4>Error fetching product details</h4>
<p class="error">${escapeHtml(section.error)}</p>
</section>\n`;
  }
  const d = section.data;
  const rows: Array<[string, unknown]> = [
    ['Author', d.author],
    ['Year', d.year],
    ['Type', d.type],
    ['Pages', d.pages],
    ['Publisher', d.publisher],
    ['Language', d.language],
    ['ISBN-10', d['ISBN-10']],
    ['ISBN-13', d['ISBN-13']],
  ];
  const items = rows
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`)
    .join('\n');
  return `<section class="details">
<h4>Book Details</h4>
<dl>
${items}
</dl>
</section>\n`;
}

function stars(rating: unknown): string {
  if (typeof rating !== 'object' || rating === null) return '';
  const r = rating as { stars?: unknown; color?: unknown; error?: unknown };
  if (typeof r.stars === 'number' && Number.isFinite(r.stars)) {
    const full = Math.max(0, Math.min(MAX_STARS, Math.round(r.stars)));
    const color = typeof r.color === 'string' && COLOR.test(r.color) ? r.color.toLowerCase() : 'black';
    return `<div class="stars stars-${color}" style="color: ${color}" title="${full} of ${MAX_STARS} stars">${
      '<span class="star full">&#9733;</span>'.repeat(full)}${'<span class="star empty">&#9734;</span>'.repeat(MAX_STARS - full)}</div>\n`;
  }
  if (r.error !== undefined) return `<p class="rating-error">${escapeHtml(r.error)}</p>\n`;
  return '';
}

function reviewsSection(section: PageSection<ReviewsData>): string {
  if (!section.ok || !section.data) {
    return `<section class="reviews">
<h4>Error fetching product reviews</h4>
<p class="error">${escapeHtml(section.error)}</p>
</section>\n`;
  }
  const data = section.data;
  const list = Array.isArray(data.reviews) ? (data.reviews as unknown[]) : [];
  const items = list
    .filter((r): r is Record<string, unknown> => typeof r === 'object' && r !== null)
    .map(
      (r) => `<article class="review">
${stars(r.rating)}<blockquote><p>"${escapeHtml(r.text)}"</p></blockquote>
<p class="reviewer">${escapeHtml(r.reviewer)}</p>
</article>`,
    )
    .join('\n');
  const cluster = typeof data.clustername === 'string' && data.clustername !== '' && data.clustername !== 'null'
    ? ` on cluster ${escapeHtml(data.clustername)}`
    : '';
  return `<section class="reviews">
<h4>Book Reviews</h4>
${items}
<p class="served-by">Reviews served by: ${escapeHtml(data.podname)}${cluster}</p>
</section>\n`;
}

export function renderProductPage(model: ProductPageModel): string {
  return `${head('Simple Bookstore App')}${nav(model.user)}<main>
<section class="summary">
<h1>${escapeHtml(model.product.title)}</h1>
<p>${model.product.descriptionHtml}</p>
</section>
${detailsSection(model.details)}${reviewsSection(model.reviews)}</main>
</body>
</html>
`;
}

export interface ServiceTreeNode {
  name: string;
  endpoint: string;
  children: ServiceTreeNode[];
}

function tree(node: ServiceTreeNode): string {
  const children = node.children.length ? `<ul>${node.children.map(tree).join('')}</ul>` : '';
  return `<li><code>${escapeHtml(node.name)}</code> → /${escapeHtml(node.endpoint)}${children}</li>`;
}

/** The landing page: what calls what, and the way into the product page. */
export function renderIndexPage(services: ServiceTreeNode): string {
  return `${head('Simple Bookstore App')}<nav><a class="brand" href="/productpage">BookInfo Sample</a></nav>
<main>
<section class="summary">
<h1>Hello! This is a simple bookstore application consisting of three services as shown below</h1>
<ul class="services">${tree(services)}</ul>
<p>Click on one of the links below to auto generate a request to the backend as a real user or a tester</p>
<p><a class="button" href="/productpage?u=normal">Normal user</a> <a class="button" href="/productpage?u=test">Test user</a></p>
</section>
</main>
</body>
</html>
`;
}

export const STYLESHEET = `body { margin: 0; font-family: system-ui, sans-serif; color: #1f2937; }
nav { display: flex; align-items: center; justify-content: space-between; gap: 1rem; padding: 0.75rem 2rem; background: #1f2937; color: #f9fafb; }
nav a, nav .user { color: #f9fafb; text-decoration: none; }
nav .brand { font-size: 1.25rem; font-weight: 600; }
nav form.login { display: flex; gap: 0.5rem; align-items: center; }
nav input { padding: 0.25rem 0.5rem; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem 2rem; }
h1 { color: #1e3a8a; }
h4 { font-size: 1.5rem; margin: 1.5rem 0 0.75rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.25rem 1.5rem; }
dt { font-weight: 600; }
dd { margin: 0; }
.reviews { background: #eff6ff; padding: 1rem 1.5rem; }
.review { margin-bottom: 1.5rem; }
.review blockquote { margin: 0.5rem 0; font-size: 1.2rem; font-weight: 600; }
.reviewer { margin: 0; color: #4b5563; }
.stars { font-size: 1.25rem; letter-spacing: 0.1rem; }
.stars-red { color: #dc2626; }
.stars-black { color: #111827; }
.error, .rating-error { color: #dc2626; }
.served-by { font-family: ui-monospace, monospace; color: #4b5563; }
.button, button { display: inline-block; padding: 0.4rem 0.9rem; border: 0; border-radius: 0.375rem; background: #2563eb; color: #fff; text-decoration: none; cursor: pointer; }
`;
