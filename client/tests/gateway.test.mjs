// Behind the gateway: the page served on a host that is not "localhost" picks the
// same-origin prefixes by itself (no configuration) and everything goes through them.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CLIENT_DIR, launchBrowser, newPage, openShop, startStack, textOf, waitFor } from './harness.mjs';
import { startGateway } from './gateway.mjs';

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
    for (const path of ['/inventory/items', '/pricing/prices', '/inventory/categories', '/order/orders', '/order/health']) {
      assert.ok(seen.includes(path), `${path} in ${JSON.stringify(seen)}`);
    }
    const post = page.locator('[data-testid="call"][data-service="order"][data-method="POST"]');
    assert.match(await post.innerText(), /201\s+\d+ ms\s+[0-9a-f-]{36}/);
    assert.deepEqual(page.errors, []);
  });
});
