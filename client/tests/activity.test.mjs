// The activity feed against the real services: with events off (no NATS_URL) the
// badge says so; with a real nats-server and NATS_URL set, a restock, a new price and
// an order made through the API show up as lines while the page is open.
//
// No fake event stream: the feed under test is the order service's own
// GET /events/stream (without NATS_URL it does not exist: 404). Where this build's
// services do not serve it although NATS_URL is set, or answer events_off (they do not
// publish yet), the tests that need it skip and say why.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  PHONE, SCREENSHOT_DIR, horizontalOverflow, launchBrowser, natsServerBinary, newPage, openShop, startStack, textOf, waitFor,
} from './harness.mjs';

/** What GET /events/stream answers right now: `{ status, code }` (the stream itself is not read). */
async function streamAnswer(stack) {
  const controller = new AbortController();
  try {
    const response = await fetch(`${stack.urls.order}/events/stream`, {
      headers: { Accept: 'text/event-stream' },
      signal: controller.signal,
    });
    const code = response.ok ? null : (await response.json().catch(() => ({}))).code ?? null;
    return { status: response.status, code };
  } finally {
    controller.abort();
  }
}

/** Why the feed cannot be tested with events on on this build, or null when it can. */
function unavailable({ status, code }) {
  if (status === 404) return 'the order service has no GET /events/stream on this build although NATS_URL is set';
  if (status === 503 && code === 'events_off') {
    return 'the order service answers 503 events_off although NATS_URL is set: it does not publish events on this build';
  }
  return null;
}

async function call(url, method, body) {
  const response = await fetch(url, {
    method,
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  assert.ok(response.ok, `${method} ${url}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

/** The lines the feed shows, top (newest) first: `{ type, text }`. */
function feedLines(page) {
  return page.$$eval('[data-testid="activity-entry"]',
    (entries) => entries.map((entry) => ({ type: entry.dataset.type, text: entry.querySelector('.activity-words').textContent })));
}

/** Waits until the feed shows a line of `type` whose words match `pattern`; returns its match. */
async function waitForLine(page, what, type, pattern) {
  await waitFor(page, what, ([t, source]) => [...document.querySelectorAll('[data-testid="activity-entry"]')]
    .some((entry) => entry.dataset.type === t && new RegExp(source).test(entry.querySelector('.activity-words').textContent)),
  [type, pattern.source]);
  const line = (await feedLines(page)).find((l) => l.type === type && pattern.test(l.text));
  return pattern.exec(line.text);
}

describe('the activity feed with events off', () => {
  let stack;
  let browser;

  before(async () => {
    stack = await startStack();
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('the badge says the feed is off when the order service has no stream (events off)', async () => {
    // Without NATS_URL the route does not exist: an unknown path, as any other.
    const answer = await streamAnswer(stack);
    assert.deepEqual(answer, { status: 404, code: 'not_found' });

    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    await waitFor(page, 'the feed to say it is off',
      () => document.querySelector('[data-testid="activity"]').dataset.status === 'off');
    assert.equal(await textOf(page, 'activity-status'), 'Off');
    assert.match(await textOf(page, 'activity-note'), /Events are off on the order service/);
    assert.equal(await page.locator('[data-testid="activity-entry"]').count(), 0);
    assert.deepEqual(page.errors, []);
    await page.close();
  });

  test('event text goes on the page as text, never as markup, and the feed never takes the focus', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    await page.locator('[data-testid="ops-sku"]').focus();
    // The page's own rendering of a hostile event (no stream needed for this part).
    const shown = await page.evaluate(async () => {
      const { entryFrom, renderEntry } = await import('./js/activity.js');
      const raw = JSON.stringify({
        id: 'e-hostile',
        type: 'shop.inventory.stock_changed',
        time: '2025-01-01T12:00:00Z',
        data: { sku: '<img src=x onerror="window.pwned=1">', stock: 1, previous_stock: 0, change: '<b>restock</b>' },
      });
      const el = renderEntry(entryFrom({ type: 'shop.inventory.stock_changed', raw, lastEventId: 'e-hostile' }));
      document.querySelector('[data-testid="activity-list"]').prepend(el);
      return { elements: el.querySelectorAll('img, b').length, text: el.textContent };
    });
    // Parsed as markup it would have made an <img> and a <b>; as text it reads as sent.
    assert.deepEqual(shown, {
      elements: 0,
      text: '12:00:00 Stock of <img src=x onerror="window.pwned=1"> changed 0 → 1 (<b>restock</b>)',
    });
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'ops-sku');
    const list = page.locator('[data-testid="activity-list"]');
    assert.equal(await list.getAttribute('aria-live'), 'polite');
    await page.close();
  });
});

describe('the activity feed with events on (nats-server)', () => {
  let stack;
  let browser;
  let skip = null;

  before(async () => {
    if (!natsServerBinary()) {
      skip = 'nats-server is not installed (or set NATS_SERVER_BIN)';
      return;
    }
    stack = await startStack({ events: true });
    skip = unavailable(await streamAnswer(stack));
    if (!skip) browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('a restock, a new price and an order appear as lines, newest first', async (t) => {
    if (skip) return t.skip(skip);
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    await waitFor(page, 'the feed to be live',
      () => document.querySelector('[data-testid="activity"]').dataset.status === 'live');
    assert.equal(await textOf(page, 'activity-status'), 'Live');

    await call(`${stack.urls.inventory}/items/C001/stock`, 'POST', { delta: 20, reason: 'restock' });
    const [, before, afterRestock] = await waitForLine(page, 'the restock', 'shop.inventory.stock_changed',
      /^Stock of C001 changed (\d+) → (\d+)/);
    assert.equal(Number(afterRestock) - Number(before), 20);

    await call(`${stack.urls.pricing}/price/C001`, 'PUT', { base_price: 12.34, discount_percent: 0, tiers: [] });
    await waitForLine(page, 'the new price', 'shop.pricing.price_changed', /^Price of C001 (changed .+ → |set to )\D*12\.34\D*$/);

    const order = await call(`${stack.urls.order}/orders`, 'POST', { customer_id: 'feed', items: [{ sku: 'C001', quantity: 2 }] });
    const short = order.order_id.replace(/-/g, '').slice(-8);
    await waitForLine(page, 'the order', 'shop.order.confirmed', new RegExp(`^Order ${short} confirmed: 2 items, \\D*24\\.68\\D*$`));

    // Newest first: the order's line is above the price's, which is above the restock's.
    const types = (await feedLines(page)).map((l) => l.type);
    const index = (type) => types.indexOf(type);
    assert.ok(index('shop.order.confirmed') < index('shop.pricing.price_changed'), types.join(', '));
    assert.ok(index('shop.pricing.price_changed') < types.lastIndexOf('shop.inventory.stock_changed'), types.join(', '));
    assert.equal(await page.locator('[data-testid="activity-empty"]').isHidden(), true);
    assert.deepEqual(page.errors, []);

    await page.setViewportSize(PHONE);
    assert.equal(await horizontalOverflow(page), 0);
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    await page.locator('#activity').screenshot({ path: join(SCREENSHOT_DIR, 'activity-phone.png') });
    await page.close();
  });
});

describe('the activity feed across a token\'s expiry (identity, nats-server)', () => {
  const OPERATOR = { name: 'Olga Operator', email: 'ops@shop.example', password: 'operator-password-1' };
  const CUSTOMER = { name: 'Ana Customer', email: 'ana@shop.example', password: 'customer-password-1' };
  // Tokens live this long: the order service ends a stream opened with one at its expiry.
  const TOKEN_TTL_S = 6;
  let stack;
  let browser;
  let skip = null;

  before(async () => {
    if (!natsServerBinary()) {
      skip = 'nats-server is not installed (or set NATS_SERVER_BIN)';
      return;
    }
    stack = await startStack({
      services: ['inventory', 'pricing', 'order', 'identity'],
      auth: { operators: [OPERATOR] },
      events: true,
      env: { identity: { ACCESS_TOKEN_TTL_S: String(TOKEN_TTL_S) } },
    });
    skip = unavailable(await streamAnswer(stack));
    if (!skip) browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  /** A restock of `sku` by the operator (a fresh token each time: they expire quickly). */
  async function restock(sku, delta) {
    const { access_token: token } = await call(`${stack.urls.identity}/sessions`, 'POST',
      { email: OPERATOR.email, password: OPERATOR.password });
    const response = await fetch(`${stack.urls.inventory}/items/${sku}/stock`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ delta, reason: 'restock' }),
    });
    assert.equal(response.status, 200, await response.text());
  }

  test('signing in, and the token expiring, reopen the stream at once: Live throughout, Last-Event-ID sent', async (t) => {
    if (skip) return t.skip(skip);
    const page = await newPage(browser);
    const streams = [];
    page.on('request', (request) => {
      if (request.url().endsWith('/events/stream')) streams.push(request.headers());
    });
    await openShop(page, stack.pageUrl());
    await waitFor(page, 'the feed to be live',
      () => document.querySelector('[data-testid="activity"]').dataset.status === 'live');
    await restock('C001', 1);
    await waitForLine(page, 'the first restock', 'shop.inventory.stock_changed', /^Stock of C001 changed/);
    // Every status the badge takes from now on.
    await page.evaluate(() => {
      const root = document.querySelector('[data-testid="activity"]');
      window.feedStatuses = [];
      new MutationObserver(() => window.feedStatuses.push(root.dataset.status))
        .observe(root, { attributes: true, attributeFilter: ['data-status'] });
    });
    await page.click('[data-testid="show-sign-up"]');
    await page.locator('[data-testid="account-form"][data-mode="sign-up"]').waitFor();
    await page.fill('#account-name', CUSTOMER.name);
    await page.fill('#account-email', CUSTOMER.email);
    await page.fill('#account-password', CUSTOMER.password);
    await page.click('[data-testid="account-submit"]');
    await page.locator('[data-testid="account-who"]').waitFor();
    // The token expires: the session ends and the service ends the stream; the feed
    // carries on signed out, and a restock after it still shows.
    await waitFor(page, 'the session to expire', () => sessionStorage.getItem('shop.session') === null,
      undefined, (TOKEN_TTL_S + 10) * 1000);
    await restock('C002', 2);
    await waitForLine(page, 'the restock after the expiry', 'shop.inventory.stock_changed', /^Stock of C002 changed/);
    const statuses = await page.evaluate(() => window.feedStatuses);
    assert.ok(statuses.every((s) => s === 'live'), `the badge left Live: ${statuses.join(', ')}`);
    assert.equal(await textOf(page, 'activity-status'), 'Live');
    const signedIn = streams.findIndex((h) => h.authorization);
    assert.ok(signedIn > 0, `no stream opened with the token: ${streams.length} streams`);
    for (const headers of streams.slice(signedIn)) assert.ok(headers['last-event-id'], JSON.stringify(headers));
    assert.ok(streams.slice(signedIn + 1).some((h) => !h.authorization), 'no stream reopened signed out');
    assert.deepEqual(page.errors, []);
    await page.close();
  });
});
