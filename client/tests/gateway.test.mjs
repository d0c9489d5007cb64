// Behind the gateway: the page served on a host that is not "localhost" picks the
// same-origin prefixes by itself (no configuration) and everything goes through them.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT_DIR, launchBrowser, newPage, openShop, startStack, textOf, waitFor } from './harness.mjs';
import { startGateway } from './gateway.mjs';
import { startNginx } from './nginx.mjs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, request } from 'node:http';

describe('served by the gateway', () => {
  let stack;
  let gateway;
  let browser;

  before(async () => {
    stack = await startStack();
    // 127.0.0.2 is this machine too, but not a name the page treats as local: like a
    // real host name, it makes the page expect a gateway.
    gateway = await startGateway({ host: '127.0.0.2', root: CLIENT_DIR, upstreams: stack.urls });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await gateway?.close();
    await stack?.stop();
  });

  test('the page finds the gateway on its own and orders through the prefixes', async () => {
    const page = await newPage(browser);
    const seen = [];
    page.on('request', (request) => seen.push(new URL(request.url()).pathname));
    await openShop(page, `${gateway.url}/`);
    assert.match(await textOf(page, 'connection'), /through the gateway on this site: inventory \/inventory, pricing \/pricing, order \/order/);
    assert.equal(await textOf(page, 'final-price-A001'), '$899.99');

    await page.click('[data-testid="add-B004"]');
    await page.fill('#customer-id', 'gus');
    await page.click('[data-testid="place-order"]');
    const card = page.locator('[data-testid="order-result"] article.order');
    await card.waitFor();
    assert.equal(await textOf(card, 'order-total'), 'Total $31.99');
    await waitFor(page, 'the pricing breaker', () => document.querySelector('[data-testid="breaker-pricing"]')?.dataset.state === 'closed');

    // Same origin: every call went through a prefix, and request ids are readable.
    for (const path of ['/inventory/items', '/pricing/prices', '/inventory/categories', '/order/orders', '/order/health', '/order/events/stream']) {
      assert.ok(seen.includes(path), `${path} in ${JSON.stringify(seen)}`);
    }
    const post = page.locator('[data-testid="call"][data-service="order"][data-method="POST"]');
    assert.match(await post.innerText(), /201\s+\d+ ms\s+[0-9a-f-]{36}/);
    assert.deepEqual(page.errors, []);
  });
});

// The real nginx gateway (docker/gateway/*) in front of a stand-in service that echoes
// what it was sent: the limits, the security headers (the CSP with them), the forwarded
// headers and passing a live event stream on are nginx's, so they are checked on nginx
// itself. Skipped where nginx is not installed.
describe('the nginx gateway', () => {
  let echo;
  let gateway;
  let skip = false;

  before(async () => {
    ({ echo, gateway } = await startEchoGateway());
    skip = gateway === null;
  });

  after(async () => {
    await gateway?.close();
    await echo?.close();
  });

  const SECURITY_HEADERS = {
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
  };

  function assertSecurityHeaders(res, what) {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
      assert.equal(res.headers.get(name), value, `${name} on ${what}`);
    }
    const csp = res.headers.get('content-security-policy') ?? '';
    for (const directive of ["default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"]) {
      assert.ok(csp.includes(directive), `${directive} in the CSP on ${what}: ${csp}`);
    }
    assert.match(res.headers.get('permissions-policy') ?? '', /camera=\(\).*geolocation=\(\).*microphone=\(\)/, what);
  }

  test('every answer carries the security headers, errors included', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const cases = [
      ['/', 200],
      ['/styles.css', 200],
      ['/healthz', 200],
      ['/no-such-file', 404],
      ['/order/orders', 200],
    ];
    for (const [path, status] of cases) {
      const res = await fetch(`${gateway.url}${path}`);
      assert.equal(res.status, status, path);
      assertSecurityHeaders(res, `GET ${path}`);
      await res.arrayBuffer();
    }
  });

  test('no service\'s /metrics or /openapi.json is served through the gateway, however the path is spelled', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const { port } = new URL(gateway.url);
    // Sent as raw request targets: fetch() would resolve the dot segments itself.
    const rawGet = (path) => new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, method: 'GET' }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode));
      });
      req.on('error', reject);
      req.end();
    });
    for (const service of ['inventory', 'pricing', 'order', 'identity']) {
      for (const path of [`/${service}/metrics`, `/${service}/openapi.json`, `/${service}//metrics`,
        `/${service}/./metrics`, `/${service}/x/../metrics`, `/${service}/%6Detrics`, `/${service}/openapi%2Ejson`,
        `/${service}/metrics/`, `/${service}/metrics?format=text`]) {
        assert.equal(await rawGet(path), 404, `GET ${path}`);
      }
    }
    // The rest of a service's paths still pass.
    assert.equal(await rawGet('/order/orders'), 200);
    assert.equal(await rawGet('/inventory/items'), 200);
  });

  test('the CSP allows the page\'s one inline script by its hash', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const html = readFileSync(`${CLIENT_DIR}/index.html`, 'utf8');
    const inline = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => m[1]);
    assert.equal(inline.length, 1, 'one inline script');
    const hash = createHash('sha256').update(inline[0]).digest('base64');
    const res = await fetch(`${gateway.url}/`);
    assert.ok(res.headers.get('content-security-policy').includes(`'sha256-${hash}'`),
      'docker/gateway/security-headers.conf has the hash of index.html\'s inline script');
  });

  test('under the gateway\'s CSP the page follows the live feed through /order/events/stream', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const browser = await launchBrowser();
    try {
      const page = await newPage(browser);
      await page.addInitScript(() => {
        window.cspViolations = [];
        document.addEventListener('securitypolicyviolation', (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
      });
      const streams = [];
      page.on('request', (request) => {
        if (request.headers().accept === 'text/event-stream') streams.push(`${request.resourceType()} ${new URL(request.url()).pathname}`);
      });
      // The stand-in is no shop: only the feed is looked at here.
      await page.goto(`${gateway.url}/?api=gateway`);
      await waitFor(page, 'the feed to be live', () => document.querySelector('[data-testid="activity"]').dataset.status === 'live');
      await waitFor(page, 'the stand-in\'s event', () => document.querySelectorAll('[data-testid="activity-entry"]').length === 1);
      assert.match(await textOf(page, 'activity-entry'), /^12:00:00\s+Stock of A001 changed 5 → 25 \(restock\)$/);
      assert.deepEqual(streams, ['fetch /order/events/stream']);
      assert.deepEqual(echo.streams.at(-1), { authorization: null, lastEventId: null }, 'signed out: no token');
      assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
    } finally {
      await browser.close();
    }
  });

  test('signed in, the feed\'s stream carries the token; signing out opens it again without, and clears the lines', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const token = fakeToken('c-feed');
    const browser = await launchBrowser();
    try {
      const page = await newPage(browser);
      // The session a reload would pick up (session.js keeps it in sessionStorage).
      await page.addInitScript((saved) => sessionStorage.setItem('shop.session', saved), JSON.stringify({ token, email: 'feed@example.com' }));
      const opened = echo.streams.length;
      await page.goto(`${gateway.url}/?api=gateway`);
      await waitFor(page, 'the stand-in\'s event', () => document.querySelectorAll('[data-testid="activity-entry"]').length === 1);
      assert.deepEqual(echo.streams.slice(opened), [{ authorization: `Bearer ${token}`, lastEventId: null }]);

      await page.evaluate(() => { document.querySelector('[data-testid="activity-entry"]').dataset.shownSignedIn = 'yes'; });
      await page.click('[data-testid="sign-out"]');
      // Signing out cleared the list at once; the stand-in's event then comes on the new stream.
      await waitFor(page, 'the stream opened again, signed out', () => document.querySelector('[data-testid="activity"]').dataset.status === 'live'
        && document.querySelectorAll('[data-testid="activity-entry"]').length === 1);
      assert.equal(await page.locator('[data-shown-signed-in]').count(), 0, 'the line shown signed in is gone');
      const after = echo.streams.slice(opened);
      assert.equal(after.length, 2, JSON.stringify(after));
      assert.deepEqual(after[1], { authorization: null, lastEventId: STAND_IN_EVENT.id }, 'signed out: no token, and the last id seen');
      // (page.errors is not looked at: the stand-in is no shop, the catalogue fails on its answers.)
    } finally {
      await browser.close();
    }
  });

  test('a token the stream refuses (401) ends the session, says why, and the feed follows signed out', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const token = fakeToken(REFUSED_SUB);
    const browser = await launchBrowser();
    try {
      const page = await newPage(browser);
      await page.addInitScript((saved) => sessionStorage.setItem('shop.session', saved), JSON.stringify({ token }));
      const opened = echo.streams.length;
      await page.goto(`${gateway.url}/?api=gateway`);
      await waitFor(page, 'the feed to follow signed out', () => document.querySelector('[data-testid="activity"]').dataset.status === 'live'
        && document.querySelectorAll('[data-testid="activity-entry"]').length === 1);
      assert.match(await textOf(page, 'activity-note'), /refused your sign-in \(401 Unauthorized: the token was refused\)/);
      assert.match(await textOf(page, 'account-status'), /no longer accepts your sign-in/);
      assert.deepEqual(echo.streams.slice(opened).map((s) => s.authorization), [`Bearer ${token}`, null]);
      assert.equal(await page.evaluate(() => sessionStorage.getItem('shop.session')), null, 'the refused token is forgotten');
      // (page.errors is not looked at: the stand-in is no shop, the catalogue fails on its answers.)
    } finally {
      await browser.close();
    }
  });

  test('stub_status answers on the internal status port only, not through the public one', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const res = await fetch(`${gateway.statusUrl}/stub_status`);
    assert.equal(res.status, 200);
    // The format nginx-prometheus-exporter parses.
    assert.match(await res.text(), /^Active connections: \d+ \nserver accepts handled requests\n \d+ \d+ \d+ \nReading: \d+ Writing: \d+ Waiting: \d+ \n$/);
    const outside = await fetch(`${gateway.url}/stub_status`);
    assert.equal(outside.status, 404);
    assert.equal((await outside.json()).code, 'not_found');
    const other = await fetch(`${gateway.statusUrl}/`);
    assert.equal(other.status, 404);
    await other.arrayBuffer();
  });

  test('Authorization, X-Forwarded-For and X-Real-IP reach the service', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const res = await fetch(`${gateway.url}/identity/.well-known/jwks.json`, {
      headers: { authorization: 'Bearer abc.def.ghi', 'x-forwarded-for': '198.51.100.7' },
    });
    assert.equal(res.status, 200);
    const seen = await res.json();
    assert.equal(seen.path, '/.well-known/jwks.json', 'the /identity prefix is stripped');
    assert.equal(seen.authorization, 'Bearer abc.def.ghi');
    // The client's claim is kept, the address it really came from appended (right-most).
    assert.equal(seen.forwardedFor, '198.51.100.7, 127.0.0.1');
    assert.equal(seen.realIp, '127.0.0.1');
  });

  test('a burst of POSTs to /order/ gets 429 problem+json; reads are not limited', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const statuses = [];
    let limited;
    for (let i = 0; i < 40; i += 1) {
      const res = await fetch(`${gateway.url}/order/orders`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      statuses.push(res.status);
      if (res.status === 429 && !limited) limited = { res, body: await res.json() };
      else await res.arrayBuffer();
    }
    // 60 a minute with a burst of 20: the first 21 pass, and 40 sent at once cannot
    // all pass unless it took the client 19 s to send them.
    assert.deepEqual(statuses.slice(0, 21), Array(21).fill(201));
    assert.ok(limited, `a 429 in ${statuses}`);
    assert.equal(limited.res.headers.get('content-type'), 'application/problem+json');
    assert.equal(limited.res.headers.get('retry-after'), '3');
    assert.equal(limited.body.code, 'rate_limited');
    assert.equal(limited.body.status, 429);
    assertSecurityHeaders(limited.res, 'the 429');
    for (let i = 0; i < 30; i += 1) {
      const res = await fetch(`${gateway.url}/order/orders`);
      assert.equal(res.status, 200, 'reads of /order/ are never limited by the gateway');
      await res.arrayBuffer();
    }
  });
});

// Behind a proxy (the prod Ingress): the gateway trusts X-Forwarded-For from the
// addresses in GATEWAY_TRUSTED_PROXIES only, so each client behind the proxy gets its
// own limit_req bucket, and a client connecting directly cannot choose one. Here the
// trusted proxy is 127.0.0.1; 127.0.0.2 (this machine too) is an untrusted peer.
describe('the nginx gateway behind a trusted proxy', () => {
  let echo;
  let gateway;
  let skip = false;

  before(async () => {
    ({ echo, gateway } = await startEchoGateway({ trustedProxies: '198.18.0.0/15, 127.0.0.1/32' }));
    skip = gateway === null;
  });

  after(async () => {
    await gateway?.close();
    await echo?.close();
  });

  /** POST /identity/sessions (limited: 20 a minute, bursts of 10) from `from`, naming `forwardedFor`. */
  const signIn = (from, forwardedFor) => post(`${gateway.url}/identity/sessions`, { from, forwardedFor });

  /**
   * Sends until the gateway answers 429 (at most 20): the address's bucket is empty.
   * Resolves to the first answer, which passed.
   */
  async function exhaust(from, forwardedFor) {
    const answers = [];
    while (answers.at(-1)?.status !== 429 && answers.length < 20) answers.push(await signIn(from, forwardedFor));
    const statuses = answers.map((a) => a.status);
    // A burst of 10 on top of the one due: 11 pass before the first 429.
    assert.deepEqual(statuses.slice(0, 11), Array(11).fill(201), `${forwardedFor} from ${from}: ${statuses}`);
    assert.equal(statuses.at(-1), 429, `${forwardedFor} from ${from}: ${statuses}`);
    return answers[0];
  }

  test('from a trusted proxy, each X-Forwarded-For client has its own bucket', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const first = await exhaust('127.0.0.1', '203.0.113.1');
    assert.equal(first.body.realIp, '203.0.113.1');
    const other = await signIn('127.0.0.1', '203.0.113.2');
    assert.equal(other.status, 201, 'another client behind the same proxy is not limited');
    // The service is told the client's address, not the proxy's.
    assert.equal(other.body.realIp, '203.0.113.2');
    assert.equal(other.body.forwardedFor, '203.0.113.2, 203.0.113.2');
    // The proxy chain is read from the right: a client's own claim left of the proxy's
    // entry does not move it out of its bucket.
    assert.equal((await signIn('127.0.0.1', '203.0.113.9, 203.0.113.1')).status, 429);
    assert.equal((await signIn('127.0.0.1', '203.0.113.1')).status, 429);
  });

  test('from an untrusted peer, X-Forwarded-For is ignored: the peer is the client', async (t) => {
    if (skip) return t.skip('nginx is not installed');
    const first = await exhaust('127.0.0.2', '198.51.100.1');
    assert.equal(first.body.realIp, '127.0.0.2', 'the service is told the peer, not the claim');
    const claimed = await signIn('127.0.0.2', '198.51.100.2');
    assert.equal(claimed.status, 429, 'a new X-Forwarded-For from an untrusted peer does not give it a new bucket');
  });
});

/**
 * A POST with an empty JSON body from the local address `from`, with X-Forwarded-For
 * `forwardedFor`; resolves to `{ status, body }` (body parsed when JSON).
 */
function post(url, { from, forwardedFor }) {
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method: 'POST',
      localAddress: from,
      headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor, connection: 'close' },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { text += chunk; });
      res.on('end', () => {
        let body = text;
        try { body = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, body });
      });
    });
    req.on('error', reject);
    req.end('{}');
  });
}

/** One event as the order service's GET /events/stream frames it. */
const STAND_IN_EVENT = {
  specversion: '1.0',
  id: '01890a5d-ac96-774b-bcce-b302099a8057',
  source: '/inventory',
  type: 'shop.inventory.stock_changed',
  subject: 'A001',
  time: '2025-01-01T12:00:00Z',
  datacontenttype: 'application/json',
  data: { sku: 'A001', name: 'Laptop', category: 'electronics', stock: 25, previous_stock: 5, change: 'restock', actor: 'anonymous' },
};

/** A token's `sub` the stand-in's stream refuses with 401. */
const REFUSED_SUB = 'refused';

/** A JWT-shaped token (not signed: the stand-in does not verify) for `sub`, valid an hour. */
function fakeToken(sub) {
  const part = (value) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${part({ alg: 'none' })}.${part({ sub, exp: Math.floor(Date.now() / 1000) + 3600, scope: '' })}.sig`;
}

/** The `sub` of a `Bearer <JWT>` header's payload, or null. */
function subOf(authorization) {
  try {
    return JSON.parse(Buffer.from(authorization.split(' ')[1].split('.')[1], 'base64url').toString()).sub;
  } catch {
    return null;
  }
}

/**
 * A stand-in service that answers every request with what it was sent; GET
 * /events/stream answers as the order service's feed does (same headers, its
 * `retry:` line, then one event) and stays open, or 401 to a token for REFUSED_SUB.
 * `streams` records each stream request's Authorization and Last-Event-ID.
 */
/** The stand-in service, and nginx with the shipped gateway configuration in front of it for every prefix. */
async function startEchoGateway(options = {}) {
  const echo = await startEcho();
  const upstream = `127.0.0.1:${echo.port}`;
  const gateway = await startNginx({
    root: CLIENT_DIR,
    upstreams: { INVENTORY: upstream, PRICING: upstream, ORDER: upstream, IDENTITY: upstream },
    ...options,
  });
  return { echo, gateway };
}

function startEcho() {
  const streams = [];
  const server = createServer((req, res) => {
    if (req.url === '/events/stream') {
      const authorization = req.headers.authorization ?? null;
      streams.push({ authorization, lastEventId: req.headers['last-event-id'] ?? null });
      if (subOf(authorization) === REFUSED_SUB) {
        res.writeHead(401, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ type: 'about:blank', title: 'Unauthorized', status: 401, code: 'unauthorized', detail: 'the token was refused' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
      res.write('retry: 3000\n\n');
      res.write(`event: ${STAND_IN_EVENT.type}\nid: ${STAND_IN_EVENT.id}\ndata: ${JSON.stringify(STAND_IN_EVENT)}\n\n`);
      return;
    }
    const body = JSON.stringify({
      method: req.method,
      path: req.url,
      authorization: req.headers.authorization ?? null,
      forwardedFor: req.headers['x-forwarded-for'] ?? null,
      realIp: req.headers['x-real-ip'] ?? null,
    });
    req.resume();
    res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
    res.end(body);
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      streams,
      close: () => new Promise((done) => { server.closeAllConnections(); server.close(() => done()); }),
    }));
  });
}
