// Pricing dies mid-test: the panel shows it down and the order service's
// pricing breaker open, orders go on with fallback prices, and an item never
// priced before waits for a price, said in plain words.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  PHONE, launchBrowser, newPage, openShop, orderFromCart, screenshot, startStack, textOf, waitFor,
} from './harness.mjs';

describe('when the pricing service goes down', () => {
  let stack;
  let browser;
  let page;

  before(async () => {
    // BREAKER_FAILURE_THRESHOLD=1: the first failed pricing call opens the breaker;
    // it stays open for a minute, longer than these tests.
    stack = await startStack({ env: { order: { BREAKER_FAILURE_THRESHOLD: '1', BREAKER_RESET_TIMEOUT_MS: '60000' } } });
    browser = await launchBrowser();
    page = await newPage(browser);
    await openShop(page, stack.pageUrl());
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('the panel shows the pricing breaker open and the next order is priced from fallback prices', async () => {
    await waitFor(page, 'both breakers closed', () => ['inventory', 'pricing']
      .every((d) => document.querySelector(`[data-testid="breaker-${d}"]`)?.dataset.state === 'closed'));
    assert.match(await textOf(page.locator('[data-testid="breaker-pricing"]'), 'breaker-failures'), /^0 of 1$/);

    // While pricing is up, an order is priced live (and the order service remembers the price).
    const live = await orderFromCart(page, [['A002', 1]], 'rita');
    assert.equal(await live.getAttribute('data-pricing'), 'live');
    assert.equal(await textOf(live, 'order-total'), 'Total $25.50');

    await stack.kill('pricing');
    await waitFor(page, 'pricing shown down', () => document.querySelector('[data-testid="health-pricing"]').dataset.status === 'down');

    const fallback = await orderFromCart(page, [['A002', 2]], 'rita');
    assert.equal(await fallback.getAttribute('data-status'), 'confirmed');
    assert.equal(await fallback.getAttribute('data-pricing'), 'fallback');
    assert.equal(await textOf(fallback, 'order-pricing'), 'Fallback prices');
    assert.match(await textOf(fallback, 'order-note'), /pricing service could not be reached.*last prices we saw/);
    assert.equal(await textOf(fallback, 'order-total'), 'Total $51.00');

    const breaker = page.locator('[data-testid="breaker-pricing"]');
    await waitFor(page, 'the pricing breaker open', () => document.querySelector('[data-testid="breaker-pricing"]').dataset.state === 'open');
    assert.equal(await textOf(breaker, 'breaker-state'), 'Open');
    assert.match(await textOf(breaker, 'breaker-failures'), /^[1-9]\d* of 1$/);
    assert.match(await textOf(breaker, 'breaker-next-trial'), /^in \d+ s$/);
    assert.equal(await page.getAttribute('[data-testid="breaker-inventory"]', 'data-state'), 'closed');
    // The catalogue says prices cannot be loaded, and keeps showing the last ones.
    await waitFor(page, 'the prices problem in the catalogue',
      () => /Loading the prices failed/.test(document.querySelector('[data-testid="catalogue-status"]').innerText));
    assert.equal(await textOf(page, 'final-price-A001'), '$899.99');
    // The order call is in the log, with its request id.
    const call = page.locator('[data-testid="call"][data-service="order"][data-method="POST"]').first();
    assert.equal(await call.getAttribute('data-status'), '201');
    assert.match(await call.innerText(), /[0-9a-f-]{36}/);

    await screenshot(page, 'desktop-pricing-down.png');
    assert.deepEqual(page.errors, []);
  });

  test('an item never priced before waits for a price, explained in plain words', async () => {
    const pending = await orderFromCart(page, [['C002', 1]], 'rita');
    assert.equal(await pending.getAttribute('data-status'), 'pending_pricing');
    assert.equal(await textOf(pending, 'order-status'), 'Waiting for a price');
    assert.equal(await textOf(pending, 'order-total'), 'Total to be confirmed');
    assert.match(await textOf(pending, 'order-note'),
      /reserved, but we could not price Green Tea yet.*nothing is charged until then/);
    assert.match(await textOf(pending, 'order-line-C002'), /not priced yet/);
    assert.equal(await textOf(page, 'order-placed'), 'Order taken, waiting for a price.');

    const phone = await newPage(browser, PHONE);
    await phone.goto(stack.pageUrl());
    await phone.evaluate(() => localStorage.setItem('shop.customerId', 'rita'));
    await openShop(phone, stack.pageUrl());
    await waitFor(phone, 'the open breaker', () => document.querySelector('[data-testid="breaker-pricing"]')?.dataset.state === 'open');
    await waitFor(phone, 'three orders in the history',
      () => document.querySelectorAll('[data-testid="history-list"] article.order').length === 3);
    await screenshot(phone, 'phone-pricing-down.png');
  });
});
