// The shop front against inventory and pricing alone, with the order service not
// running: what still works, and that what does not is said in plain words.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DESKTOP, PHONE, horizontalOverflow, launchBrowser, newPage, openShop, startStack, textOf, waitFor,
} from './harness.mjs';

describe('shop front without the order service', () => {
  let stack;
  let browser;

  before(async () => {
    stack = await startStack({ services: ['inventory', 'pricing'] });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('the read-only demo steps run on load and the order step waits for "Run demo"', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    await waitFor(page, 'the read-only demo steps', () => document.querySelector('#demo').dataset.demo === 'read-only-complete');
    for (const step of ['list-items', 'get-item', 'get-price']) {
      assert.equal(await page.getAttribute(`[data-testid="demo-step-${step}"]`, 'data-state'), 'done', step);
    }
    assert.equal(await page.getAttribute('[data-testid="demo-step-place-order"]', 'data-state'), 'optin');
    const steps = page.locator('[data-testid="demo-steps"]');
    assert.match(await textOf(steps, 'demo-step-list-items'), /13 items in the catalogue/);
    assert.match(await textOf(steps, 'demo-step-get-item'), /Laptop: 50 in stock/);
    assert.match(await textOf(steps, 'demo-step-get-price'), /\$899\.99 \(−10% off \$999\.99\)/);
    assert.deepEqual(page.errors, []);
  });

  test('the catalogue is grouped by category with stock, prices and discounts', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    const electronics = page.locator('[data-testid="category-electronics"]');
    assert.match(await electronics.locator('h3').innerText(), /Electronics\s+5 items · 710 in stock/);
    assert.equal(await electronics.locator('[data-testid="item-A001"]').count(), 1);
    assert.equal(await page.locator('[data-testid="category-furniture"] [data-testid="item-B001"]').count(), 1);
    assert.equal(await page.locator('[data-testid="category-grocery"] [data-testid="item-C001"]').count(), 1);

    assert.equal(await textOf(page, 'stock-A001'), '50 in stock');
    assert.equal(await textOf(page, 'final-price-A001'), '$899.99');
    assert.match(await textOf(page, 'base-price-A001'), /\$999\.99/);
    assert.equal(await page.locator('[data-testid="base-price-A001"]').evaluate((el) => el.tagName), 'S');
    assert.match(await textOf(page, 'discount-A001'), /^−10%/);
    // No discount: no struck-through price.
    assert.equal(await textOf(page, 'final-price-B001'), '$199.00');
    assert.equal(await page.locator('[data-testid="base-price-B001"]').count(), 0);
    // Out of stock: said, and cannot be added.
    assert.equal(await textOf(page, 'stock-B002'), 'Out of stock');
    assert.equal(await page.isDisabled('[data-testid="add-B002"]'), true);
  });

  test('the panel shows inventory and pricing up, the order service down, and the calls made', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    await waitFor(page, 'health of all three services', () => ['inventory', 'pricing', 'order']
      .every((s) => ['ok', 'down'].includes(document.querySelector(`[data-testid="health-${s}"]`)?.dataset.status)));
    assert.equal(await page.getAttribute('[data-testid="health-inventory"]', 'data-status'), 'ok');
    assert.equal(await page.getAttribute('[data-testid="health-pricing"]', 'data-status'), 'ok');
    assert.equal(await page.getAttribute('[data-testid="health-order"]', 'data-status'), 'down');
    assert.match(await textOf(page, 'health-order'), /The order service cannot be reached/);
    assert.equal(await page.getAttribute('[data-testid="breaker-pricing"]', 'data-state'), 'unknown');

    const calls = page.locator('[data-testid="call"]');
    await waitFor(page, 'calls in the log', () => document.querySelectorAll('[data-testid="call"]').length >= 6);
    const itemsCall = page.locator('[data-testid="call"][data-path="/items/A001"]');
    assert.equal(await itemsCall.getAttribute('data-status'), '200');
    assert.match(await itemsCall.innerText(), /GET\s+inventory \/items\/A001\s+200\s+\d+ ms\s+[0-9a-f-]{36}/);
    assert.ok(await calls.count() <= 20);
  });

  test('a problem from a service is shown as its title and detail, never as raw JSON', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.pageUrl());
    await page.fill('#ops-sku', 'ZZZ9');
    await page.click('[data-testid="op-get-item"]');
    const output = page.locator('[data-testid="ops-output"]');
    await output.locator('[data-testid="problem"]').waitFor();
    assert.equal(await textOf(output, 'problem-title'), 'Item not found');
    assert.equal(await textOf(output, 'problem-detail'), 'There is no item with sku ZZZ9.');
    assert.equal(await output.locator('[data-testid="problem"]').getAttribute('data-code'), 'item_not_found');
    assert.match(await textOf(output, 'problem-request-id'), /^[0-9a-f-]{36}$/);
    assert.doesNotMatch(await output.innerText(), /[{}"]/);
  });

  test('the cart works from the keyboard and an unreachable order service is explained', async () => {
    const page = await newPage(browser);
    const keys = [];
    page.on('request', (request) => {
      if (request.method() === 'POST' && request.url().endsWith('/orders')) keys.push(request.headers()['idempotency-key']);
    });
    await openShop(page, stack.pageUrl());
    await page.focus('[data-testid="add-A001"]');
    await page.keyboard.press('Enter');
    await page.keyboard.press('Enter');
    assert.equal(await page.inputValue('[data-testid="qty-A001"]'), '2');
    // The add button keeps the focus; the item says how many are in the cart.
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'add-A001');
    assert.equal(await textOf(page, 'in-cart-A001'), '2 in cart');
    assert.equal(await page.isVisible('[data-testid="in-cart-A002"]'), false);

    await page.focus('[data-testid="inc-A001"]');
    await page.keyboard.press('Space');
    await page.keyboard.press('Enter');
    assert.equal(await page.inputValue('[data-testid="qty-A001"]'), '4');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'inc-A001');
    await page.keyboard.press('Shift+Tab');
    await page.keyboard.press('Shift+Tab');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'dec-A001');
    await page.keyboard.press('Enter');
    assert.equal(await page.inputValue('[data-testid="qty-A001"]'), '3');
    await page.fill('[data-testid="qty-A001"]', '5');
    await page.keyboard.press('Tab');
    assert.equal(await textOf(page, 'cart-estimate'), '$4,499.95');
    assert.equal(await textOf(page, 'cart-count'), '(5)');
    // Removing a line puts the focus on the cart's heading, not on the page's start.
    await page.click('[data-testid="add-C003"]');
    await page.focus('[data-testid="remove-C003"]');
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('[data-testid="cart-line-C003"]').count(), 0);
    assert.equal(await page.evaluate(() => document.activeElement.id), 'cart-heading');

    // Without a customer id the page asks for one instead of calling.
    await page.click('[data-testid="place-order"]');
    assert.equal(await textOf(page, 'order-result'), 'A customer id is needed Enter who the order is for, e.g. your email or account id.');
    assert.equal(await page.getAttribute('#customer-id', 'aria-invalid'), 'true');

    await page.fill('#customer-id', 'kim');
    await page.click('[data-testid="place-order"]');
    const result = page.locator('[data-testid="order-result"]');
    await result.locator('[data-testid="problem"]').waitFor();
    assert.equal(await textOf(result, 'problem-title'), 'The order service cannot be reached');
    assert.match(await textOf(result, 'problem-detail'), /No answer from http:\/\/127\.0\.0\.1:\d+\/orders/);
    // The outcome is unknown, so the retry reuses the idempotency key; a changed cart
    // is a new attempt with a new key.
    assert.match(await result.innerText(), /Trying again is safe/);
    await page.click('[data-testid="place-order"]');
    await waitFor(page, 'the second attempt', () => !document.querySelector('[data-testid="place-order"]').disabled
      && document.querySelector('[data-testid="order-result"] [data-testid="problem"]'));
    await page.click('[data-testid="inc-A001"]');
    await page.click('[data-testid="place-order"]');
    await waitFor(page, 'the third attempt', () => !document.querySelector('[data-testid="place-order"]').disabled
      && document.querySelector('[data-testid="order-result"] [data-testid="problem"]'));
    await page.click('[data-testid="dec-A001"]');
    assert.equal(keys.length, 3, JSON.stringify(keys));
    assert.equal(keys[0], keys[1]);
    assert.notEqual(keys[1], keys[2]);
    // The cart is kept and the customer id remembered.
    assert.equal(await page.inputValue('[data-testid="qty-A001"]'), '5');
    assert.equal(await page.evaluate(() => localStorage.getItem('shop.customerId')), 'kim');
    await page.reload();
    await page.waitForSelector('body[data-ready="true"]');
    assert.equal(await page.inputValue('#customer-id'), 'kim');
    assert.deepEqual(page.errors, []);
  });

  test('opened as a file:// the page runs from the bundle and reaches the services over CORS', async () => {
    const page = await newPage(browser);
    await openShop(page, stack.fileUrl());
    await waitFor(page, 'the read-only demo steps', () => document.querySelector('#demo').dataset.demo === 'read-only-complete');
    assert.equal(await textOf(page, 'final-price-A001'), '$899.99');
    assert.match(await textOf(page, 'connection'), /directly on their own ports/);
    assert.deepEqual(page.errors, []);
  });

  test('every input has a label and the page does not scroll sideways on a phone', async () => {
    const page = await newPage(browser, PHONE);
    await openShop(page, stack.pageUrl());
    await page.click('[data-testid="add-C001"]');
    const unlabelled = await page.evaluate(() => [...document.querySelectorAll('input, select, textarea')]
      .filter((el) => el.labels.length === 0 && !el.getAttribute('aria-label'))
      .map((el) => el.id || el.outerHTML));
    assert.deepEqual(unlabelled, []);
    assert.equal(await horizontalOverflow(page), 0);
    const desktop = await newPage(browser, DESKTOP);
    await openShop(desktop, stack.pageUrl());
    assert.equal(await horizontalOverflow(desktop), 0);
  });
});

describe('a slow inventory', () => {
  let stack;
  let browser;

  before(async () => {
    // Every inventory answer (but health) takes 1.5 s.
    stack = await startStack({
      services: ['inventory', 'pricing'],
      env: { inventory: { CHAOS_DELAY_RATE: '1', CHAOS_DELAY_MS: '1500-1500' } },
    });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('shows progress while the catalogue loads', async () => {
    const page = await newPage(browser);
    await page.goto(stack.pageUrl());
    const catalogue = page.locator('[data-testid="catalogue"]');
    await page.waitForSelector('#shop[aria-busy="true"]');
    await catalogue.locator('[data-testid="spinner"]').waitFor();
    assert.equal(await page.isDisabled('[data-testid="reload-catalogue"]'), true);
    await page.waitForSelector('#demo [data-testid="demo-step-list-items"][data-state="running"]');
    await page.waitForSelector('#shop[data-loaded="true"]', { timeout: 10_000 });
    assert.equal(await catalogue.getAttribute('aria-busy'), null);
    assert.equal(await catalogue.locator('[data-testid="spinner"]').count(), 0);
    assert.equal(await textOf(page, 'stock-A001'), '50 in stock');
  });
});
