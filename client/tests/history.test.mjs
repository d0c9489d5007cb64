// The order history of a customer with more orders than one page, and with
// attempts that did not go through: those show apart from the orders, and
// "Show older orders" pages on with the service's next_cursor.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  DESKTOP, PHONE, SCREENSHOT_DIR, horizontalOverflow, launchBrowser, newPage, openShop, startStack, textOf, waitFor,
} from './harness.mjs';

/** Places an order straight at the order service; its answer's status and body. */
async function place(stack, customerId, items) {
  const response = await fetch(`${stack.urls.order}/orders`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ customer_id: customerId, items }),
  });
  return { status: response.status, body: await response.json() };
}

/** The order ids a list shows, top to bottom. */
function shownIds(page, testId) {
  return page.$$eval(`[data-testid="${testId}"] article.order`, (cards) => cards.map((card) => card.dataset.orderId));
}

describe('order history, page by page, attempts apart', () => {
  let stack;
  let browser;
  const placed = []; // newest last
  const refused = [];

  before(async () => {
    stack = await startStack();
    browser = await launchBrowser();
    // 25 orders: more than one page of the history (20).
    for (let n = 0; n < 25; n += 1) {
      const { status, body } = await place(stack, 'hana', [{ sku: 'C001', quantity: 1 }]);
      assert.equal(status, 201);
      placed.push(body.order_id);
    }
    // Desks are out of stock, and nobody sells Z999: refused, but kept in the history.
    for (const [sku, expected] of [['B002', 409], ['Z999', 422], ['B002', 409]]) {
      const { status, body } = await place(stack, 'hana', [{ sku, quantity: 1 }]);
      assert.equal(status, expected);
      refused.push(body);
    }
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  async function openHistory(viewport = DESKTOP) {
    const page = await newPage(browser, viewport);
    const listed = [];
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (request.method() === 'GET' && url.pathname === '/orders') listed.push(url.searchParams);
    });
    await page.goto(stack.pageUrl());
    await page.evaluate(() => localStorage.setItem('shop.customerId', 'hana'));
    await openShop(page, stack.pageUrl());
    await waitFor(page, 'the first page of the history',
      () => document.querySelectorAll('[data-testid="history-list"] article.order').length > 0);
    await waitFor(page, 'the attempts', () => !document.querySelector('[data-testid="attempts"]').hidden);
    return { page, listed };
  }

  test('the first page shows 20 orders, newest first, and "Show older orders" brings the rest once each', async () => {
    const { page, listed } = await openHistory();
    const newestFirst = [...placed].reverse();
    assert.deepEqual(await shownIds(page, 'history-list'), newestFirst.slice(0, 20));
    assert.equal(await textOf(page, 'history-count'), '20 orders shown, newest first; older ones follow.');
    const more = page.locator('[data-testid="history-more"]');
    assert.ok(await more.isVisible());

    await more.click();
    await waitFor(page, 'the second page',
      () => document.querySelectorAll('[data-testid="history-list"] article.order').length === 25);
    assert.deepEqual(await shownIds(page, 'history-list'), newestFirst, 'each order once, newest first');
    assert.equal(await textOf(page, 'history-count'), '25 orders, newest first.');
    assert.ok(await more.isHidden(), 'no more pages: no button');

    // The page asked for the orders that went through, then went on from the cursor.
    const orders = listed.filter((q) => q.get('status') === 'pending,confirmed,pending_pricing,cancelled');
    assert.equal(orders.length, 2);
    assert.equal(orders[0].get('cursor'), null);
    assert.match(orders[1].get('cursor'), /^[A-Za-z0-9_-]{34}$/);
    assert.equal(orders[1].get('limit'), '20');
    assert.deepEqual(page.errors, []);
  });

  test('refused attempts show apart from the orders, with why', async () => {
    const { page } = await openHistory();
    const attempts = page.locator('[data-testid="attempts"]');
    assert.match(await attempts.locator('h3').innerText(), /Attempts that did not go through/);
    assert.equal(await textOf(attempts, 'attempts-count'), '3 attempts, newest first.');
    const ids = await shownIds(page, 'attempts-list');
    assert.equal(ids.length, 3);
    for (const card of await attempts.locator('article.order').all()) {
      assert.equal(await card.getAttribute('data-status'), 'rejected');
      assert.equal(await textOf(card, 'order-status'), 'Refused');
      assert.match(await textOf(card, 'order-note'), /refused \((insufficient stock|unknown sku)\); nothing was reserved/);
      assert.match(await card.locator('h4').innerText(), /^Attempt [0-9a-f]{8}$/);
      assert.equal(await textOf(card, 'order-total'), 'Nothing charged');
      assert.equal(await card.locator('button').count(), 0, 'nothing to cancel');
    }
    // None of them is among the orders.
    const orders = new Set(await shownIds(page, 'history-list'));
    assert.ok(ids.every((id) => !orders.has(id)));
    assert.ok(await page.locator('[data-testid="attempts-more"]').isHidden());
    assert.deepEqual(page.errors, []);
  });

  test('a refused order from the cart joins the attempts at once', async () => {
    const { page } = await openHistory();
    // More coffee than there is: refused for want of stock.
    await page.click('[data-testid="add-C001"]');
    await page.fill('[data-testid="qty-C001"]', '1000');
    await page.press('[data-testid="qty-C001"]', 'Tab');
    await page.click('[data-testid="place-order"]');
    await page.locator('[data-testid="order-result"] [data-testid="problem"]').waitFor();
    await waitFor(page, 'the refused attempt in the history',
      () => document.querySelectorAll('[data-testid="attempts-list"] article.order').length === 4);
    assert.equal(await textOf(page, 'attempts-count'), '4 attempts, newest first.');
    assert.equal(await page.locator('[data-testid="history-list"] article.order[data-status="rejected"]').count(), 0);
  });

  test('screenshots of the history section at desktop and phone widths', async () => {
    for (const [name, viewport] of [['desktop-history.png', DESKTOP], ['phone-history.png', PHONE]]) {
      const { page } = await openHistory(viewport);
      assert.equal(await horizontalOverflow(page), 0, `${name}: nothing sticks out sideways`);
      // The section alone: the rest of the page is in the other screenshots.
      await page.mouse.move(0, 0);
      mkdirSync(SCREENSHOT_DIR, { recursive: true });
      await page.locator('[data-testid="history"]').screenshot({ path: join(SCREENSHOT_DIR, name) });
      assert.deepEqual(page.errors, []);
    }
  });
});
