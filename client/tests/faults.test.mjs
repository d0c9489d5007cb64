// Fault control from the resilience panel: "Break pricing" makes every pricing
// answer fail, the next order is priced from fallback prices, the pricing breaker
// opens and the fallback share rises; "Heal all" puts every service back. A
// service whose control is off (no CHAOS_CONTROL) keeps its button disabled, and
// says why.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  launchBrowser, newPage, openShop, orderFromCart, screenshot, startStack, textOf, waitFor,
} from './harness.mjs';

describe('fault control from the resilience panel', () => {
  let stack;
  let browser;
  let page;

  before(async () => {
    // Inventory without CHAOS_CONTROL: its control does not exist (404).
    stack = await startStack({
      env: {
        pricing: { CHAOS_CONTROL: 'on' },
        order: { CHAOS_CONTROL: 'on', BREAKER_FAILURE_THRESHOLD: '1', BREAKER_RESET_TIMEOUT_MS: '60000' },
      },
    });
    browser = await launchBrowser();
    page = await newPage(browser);
    await openShop(page, stack.pageUrl());
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('"Break pricing" opens the pricing breaker and raises the fallback share; "Heal all" ends it', async () => {
    await waitFor(page, 'the pricing control ready', (id) => {
      const button = document.querySelector(`[data-testid="${id}"]`);
      return Boolean(button) && !button.disabled;
    }, 'chaos-break-pricing');
    await waitFor(page, 'both breakers closed', () => ['inventory', 'pricing']
      .every((d) => document.querySelector(`[data-testid="breaker-${d}"]`)?.dataset.state === 'closed'));
    const live = await orderFromCart(page, [['A002', 1]], 'fay');
    assert.equal(await live.getAttribute('data-pricing'), 'live');
    await waitFor(page, 'a known fallback share of 0 %',
      () => document.querySelector('[data-testid="fallback-share"]')?.dataset.share === '0');

    await page.click('[data-testid="chaos-break-pricing"]');
    await waitFor(page, 'the change confirmed',
      () => /Pricing now fails every request/.test(document.querySelector('[data-testid="chaos-message"]')?.innerText || ''));
    assert.match(await textOf(page, 'chaos-pricing'), /pricing: fails 100 %/);
    const direct = await fetch(`${stack.urls.pricing}/price/A001`);
    assert.ok(direct.status >= 500, `pricing answers ${direct.status} at once`);

    const fallback = await orderFromCart(page, [['A002', 1]], 'fay');
    assert.equal(await fallback.getAttribute('data-pricing'), 'fallback');
    await waitFor(page, 'the pricing breaker open',
      () => document.querySelector('[data-testid="breaker-pricing"]').dataset.state === 'open');
    await waitFor(page, 'the fallback share risen to 50 %',
      () => document.querySelector('[data-testid="fallback-share"]')?.dataset.share === '50');
    assert.match(await textOf(page, 'fallback-share'), /^Fallback share: 50 % \(1 of 2 orders/);
    await screenshot(page, 'desktop-break-pricing.png');

    await page.click('[data-testid="chaos-heal-all"]');
    await waitFor(page, 'healed',
      () => /No faults injected any more/.test(document.querySelector('[data-testid="chaos-message"]')?.innerText || ''));
    assert.match(await textOf(page, 'chaos-pricing'), /pricing: no faults/);
    assert.match(await textOf(page, 'chaos-order'), /order: no faults/);
    assert.equal((await fetch(`${stack.urls.pricing}/price/A001`)).status, 200);
    assert.deepEqual(page.errors, []);
  });

  test('a service without fault control keeps its button disabled and says why', async () => {
    await waitFor(page, 'the inventory control checked',
      () => /fault control is off/.test(document.querySelector('[data-testid="chaos-inventory"]')?.innerText || ''));
    const slow = page.locator('[data-testid="chaos-slow-inventory"]');
    assert.equal(await slow.isDisabled(), true);
    assert.match(await slow.getAttribute('title'), /inventory: fault control is off \(CHAOS_CONTROL=off\)/);
    // Identity is not running here: "Heal all" still works on the services that answer.
    assert.equal(await page.locator('[data-testid="chaos-heal-all"]').isDisabled(), false);
  });
});
