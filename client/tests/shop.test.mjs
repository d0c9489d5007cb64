// The whole shop against all three services: the demo, ordering from the cart,
// the history, cancelling, a refused order, and the screenshots.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DESKTOP, PHONE, horizontalOverflow, launchBrowser, newPage, openShop, screenshot, startStack, textOf, waitFor,
} from './harness.mjs';

/** The stock the page shows for `sku`. */
async function shownStock(page, sku) {
  return Number(await page.getAttribute(`[data-testid="stock-${sku}"]`, 'data-stock'));
}

async function waitForStock(page, sku, stock) {
  await waitFor(page, `${sku} to show ${stock} in stock`,
    ([s, n]) => document.querySelector(`[data-testid="stock-${s}"]`)?.dataset.stock === String(n), [sku, stock]);
}

async function placeOrder(page, customerId) {
  await page.fill('#customer-id', customerId);
  await page.click('[data-testid="place-order"]');
  const result = page.locator('[data-testid="order-result"]');
  await result.locator('[data-testid="order-placed"], [data-testid="problem"]').first().waitFor();
  return result;
}

describe('shop with all three services', () => {
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

  test('"Run demo" completes every step of the seed demo, the order included', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    await waitFor(page, 'the read-only steps', () => document.querySelector('#demo').dataset.demo === 'read-only-complete');
    const laptops = await shownStock(page, 'A001');
    const chairs = await shownStock(page, 'B001');

    await page.click('[data-testid="run-demo"]');
    await waitFor(page, 'the whole demo', () => ['complete', 'failed'].includes(document.querySelector('#demo').dataset.demo)
      && document.querySelector('[data-testid="demo-step-place-order"]').dataset.state !== 'optin');
    for (const step of ['list-items', 'get-item', 'get-price', 'place-order']) {
      assert.equal(await page.getAttribute(`[data-testid="demo-step-${step}"]`, 'data-state'), 'done', step);
    }
    assert.equal(await textOf(page, 'demo-status'), 'Demo complete: every step succeeded.');
    assert.match(await textOf(page, 'demo-step-place-order'),
      /Order [0-9a-f]+: confirmed, total \$1,098\.99, live prices/);
    // The catalogue reloads: the order took one of each.
    await waitForStock(page, 'A001', laptops - 1);
    await waitForStock(page, 'B001', chairs - 1);
    assert.deepEqual(page.errors, []);
  });

  test('?demo=1 runs the whole demo when the page opens', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl({ demo: '1' }));
    await waitFor(page, 'the whole demo', () => document.querySelector('#demo').dataset.demo === 'complete');
    assert.equal(await page.getAttribute('[data-testid="demo-step-place-order"]', 'data-state'), 'done');
  });

  test('an order placed from the cart appears in the history with the right total', async () => {
    const page = await newPage(browser);
    const keys = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url().endsWith('/orders')) keys.push(request.headers()['idempotency-key']);
    });
    await openShop(page, stack.pageUrl());
    // 2 monitors at $279.65 and 3 bags of coffee at $14.96: $604.18.
    await page.click('[data-testid="add-A004"]');
    await page.click('[data-testid="inc-A004"]');
    await page.click('[data-testid="add-C001"]');
    await page.click('[data-testid="inc-C001"]');
    await page.click('[data-testid="inc-C001"]');
    assert.equal(await textOf(page, 'cart-estimate'), '$604.18');

    const result = await placeOrder(page, 'ana');
    assert.equal(await textOf(result, 'order-placed'), 'Thank you, your order is placed.');
    const card = result.locator('article.order');
    assert.equal(await card.getAttribute('data-status'), 'confirmed');
    assert.equal(await card.getAttribute('data-pricing'), 'live');
    assert.equal(await textOf(card, 'order-pricing'), 'Live prices');
    assert.equal(await textOf(card, 'order-total'), 'Total $604.18');
    assert.match(await textOf(card, 'order-line-A004'), /27-inch Monitor\s+A004\s+2\s+\$279\.65\s+−15%\s+off\s+\$559\.30/);
    const orderId = await card.getAttribute('data-order-id');
    // The cart empties once the order is taken.
    assert.equal(await page.locator('[data-testid^="cart-line-"]').count(), 0);

    const history = page.locator('[data-testid="history"]');
    await waitFor(page, 'the order in the history',
      (id) => document.querySelector(`[data-testid="history-list"] [data-order-id="${id}"]`), orderId);
    assert.equal(await textOf(history, 'history-customer'), 'ana');
    assert.equal(await textOf(history, 'history-count'), '1 order, newest first.');
    const listed = history.locator(`[data-order-id="${orderId}"]`);
    assert.equal(await listed.locator('[data-testid="order-total"]').getAttribute('data-total'), '604.18');
    assert.equal(await textOf(listed, 'order-total'), 'Total $604.18');
    assert.equal(await textOf(listed, 'order-status'), 'Confirmed');

    // Each attempt sent its own Idempotency-Key: a second order is a second order.
    await page.click('[data-testid="add-C002"]');
    const second = await placeOrder(page, 'ana');
    assert.notEqual(await second.locator('article.order').getAttribute('data-order-id'), orderId);
    await waitFor(page, 'two orders in the history',
      () => document.querySelectorAll('[data-testid="history-list"] article.order').length === 2);
    assert.equal(keys.length, 2);
    assert.match(keys[0], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(keys[0], keys[1]);
    assert.deepEqual(page.errors, []);
  });

  test('cancelling an order restores the stock shown', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    const before = await shownStock(page, 'B003');
    await page.click('[data-testid="add-B003"]');
    await page.fill('[data-testid="qty-B003"]', '4');
    await page.press('[data-testid="qty-B003"]', 'Enter');
    const result = await placeOrder(page, 'bo');
    const orderId = await result.locator('article.order').getAttribute('data-order-id');
    await waitForStock(page, 'B003', before - 4);

    const listed = page.locator(`[data-testid="history-list"] [data-order-id="${orderId}"]`);
    await listed.waitFor();
    await listed.locator(`[data-testid="cancel-${orderId}"]`).click();
    const cancelled = page.locator(`[data-testid="history-list"] [data-order-id="${orderId}"][data-status="cancelled"]`);
    await cancelled.waitFor();
    assert.equal(await textOf(cancelled, 'order-status'), 'Cancelled');
    assert.match(await textOf(cancelled, 'order-note'), /cancelled and its items went back into stock/);
    assert.equal(await cancelled.locator('button').count(), 0);
    await waitForStock(page, 'B003', before);
    assert.equal(await textOf(page, 'stock-B003'), `${before} in stock`);
    // The checkout result shows the same order: it follows.
    assert.equal(await result.locator('article.order').getAttribute('data-status'), 'cancelled');
  });

  test('ordering more than the stock shows the insufficient_stock problem in words', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    const stock = await shownStock(page, 'B001');
    await page.click('[data-testid="add-B001"]');
    await page.fill('[data-testid="qty-B001"]', String(stock + 5));
    await page.press('[data-testid="qty-B001"]', 'Tab');
    assert.match(await textOf(page, 'over-stock-B001'), new RegExp(`Only ${stock} in stock`));

    const result = await placeOrder(page, 'cy');
    const problem = result.locator('[data-testid="problem"]');
    assert.equal(await problem.getAttribute('data-code'), 'insufficient_stock');
    const title = await textOf(problem, 'problem-title');
    const detail = await textOf(problem, 'problem-detail');
    assert.ok(title.length > 3 && detail.length > 3, `title "${title}", detail "${detail}"`);
    assert.match(await problem.innerText(), /B001/);
    assert.match(await problem.innerText(), /HTTP 409/);
    assert.doesNotMatch(await problem.innerText(), /[{}"]/);
    // Nothing was taken: the stock and the cart stay as they were.
    assert.equal(await shownStock(page, 'B001'), stock);
    assert.equal(await page.inputValue('[data-testid="qty-B001"]'), String(stock + 5));
  });

  test('screenshots at desktop and phone widths', async () => {
    for (const [name, viewport] of [['desktop.png', DESKTOP], ['phone.png', PHONE]]) {
      const page = await newPage(browser, viewport);
      await page.goto(stack.pageUrl());
      await page.evaluate(() => localStorage.setItem('shop.customerId', 'demo'));
      await openShop(page, stack.pageUrl({ demo: '1' }));
      await waitFor(page, 'the whole demo', () => document.querySelector('#demo').dataset.demo === 'complete');
      await waitFor(page, 'the demo order in the history',
        () => document.querySelectorAll('[data-testid="history-list"] article.order').length > 0);
      await page.click('[data-testid="add-A001"]');
      await page.click('[data-testid="add-C001"]');
      await page.click('[data-testid="inc-C001"]');
      await page.click('[data-testid="op-get-price"]');
      await page.locator('[data-testid="ops-summary"]').waitFor();
      await waitFor(page, 'breakers shown', () => document.querySelector('[data-testid="breaker-pricing"]')?.dataset.state === 'closed');
      assert.equal(await horizontalOverflow(page), 0, `${name}: nothing sticks out sideways`);
      await page.evaluate(() => window.scrollTo(0, 0));
      await screenshot(page, name);
      assert.deepEqual(page.errors, []);
    }
  });
});
