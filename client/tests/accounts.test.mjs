// Accounts against the real identity service, with the shop's services verifying its
// tokens (auth on, not required): signing up and in, ordering as the token's subject,
// signing out, a wrong password, and the operator view (restock, reprice, history) for
// an operator account identity provisions at start-up.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DESKTOP, PHONE, horizontalOverflow, launchBrowser, newPage, openShop, screenshot, startStack, textOf, waitFor,
} from './harness.mjs';

const OPERATOR = { name: 'Olga Operator', email: 'ops@shop.example', password: 'operator-password-1' };
const CUSTOMER = { name: 'Ana Customer', email: 'ana@shop.example', password: 'customer-password-1' };

/** A page that keeps what it wrote to the console, to check no secret went there. */
async function watchedPage(browser, viewport) {
  const page = await newPage(browser, viewport);
  page.consoleText = [];
  page.on('console', (message) => page.consoleText.push(message.text()));
  return page;
}

async function openAccountForm(page, which) {
  await page.click(`[data-testid="show-${which}"]`);
  await page.locator(`[data-testid="account-form"][data-mode="${which}"]`).waitFor();
}

async function signUp(page, { name, email, password }) {
  await openAccountForm(page, 'sign-up');
  await page.fill('#account-name', name);
  await page.fill('#account-email', email);
  await page.fill('#account-password', password);
  await page.click('[data-testid="account-submit"]');
}

async function signIn(page, { email, password }) {
  await openAccountForm(page, 'sign-in');
  await page.fill('#account-email', email);
  await page.fill('#account-password', password);
  await page.click('[data-testid="account-submit"]');
}

async function waitSignedIn(page) {
  await page.locator('[data-testid="account-who"]').waitFor();
}

/** The token this tab keeps, and its subject, read as the page reads them. */
async function sessionOf(page) {
  const saved = await page.evaluate(() => sessionStorage.getItem('shop.session'));
  if (!saved) return null;
  const { token } = JSON.parse(saved);
  const payload = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString());
  return { token, sub: payload.sub, scopes: String(payload.scope || '').split(' ').filter(Boolean) };
}

async function shownStock(page, sku) {
  return Number(await page.getAttribute(`[data-testid="stock-${sku}"]`, 'data-stock'));
}

describe('accounts, with identity and auth on', () => {
  let stack;
  let browser;

  before(async () => {
    stack = await startStack({ services: ['inventory', 'pricing', 'order', 'identity'], auth: { operators: [OPERATOR] } });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('a customer signs up, orders as the token\'s subject, keeps the session on reload, and signs out', async () => {
    const page = await watchedPage(browser);
    const sent = [];
    page.on('request', (request) => sent.push({ url: request.url(), method: request.method(), auth: request.headers().authorization }));
    await openShop(page, stack.pageUrl());
    assert.equal(await textOf(page, 'account-message'), 'Not signed in.');

    await signUp(page, CUSTOMER);
    await waitSignedIn(page);
    assert.equal(await textOf(page, 'account-status'), `Signed in as ${CUSTOMER.name}`);
    const { token, sub, scopes } = await sessionOf(page);
    assert.deepEqual(scopes, []);
    // Kept for this tab only: nothing of it in localStorage.
    assert.equal(await page.evaluate((t) => Object.values(localStorage).some((v) => v.includes(t)), token), false);
    // The customer id is the account's, shown and read-only, and the history follows it.
    await waitFor(page, 'the customer id to be the account\'s', (s) => document.querySelector('#customer-id').value === s, sub);
    assert.equal(await page.getAttribute('#customer-id', 'readonly'), '');
    await waitFor(page, 'the history of the account', (s) => document.querySelector('[data-testid="history-customer"]').textContent === s, sub);
    assert.equal(await page.isHidden('[data-testid="operator"]'), true);

    await page.click('[data-testid="add-A002"]');
    await page.click('[data-testid="place-order"]');
    const card = page.locator('[data-testid="order-result"] article.order');
    await card.waitFor();
    const orderId = await card.getAttribute('data-order-id');
    assert.match(await card.locator('.order-meta').innerText(), new RegExp(`by ${sub}`));
    await page.locator(`[data-testid="history-list"] [data-order-id="${orderId}"]`).waitFor();

    // The order service filed it under the token's subject.
    const mine = await (await fetch(`${stack.urls.order}/orders`, { headers: { Authorization: `Bearer ${token}` } })).json();
    assert.deepEqual(mine.orders.map((o) => [o.order_id, o.customer_id]), [[orderId, sub]]);
    // Every service call carried the token; identity's sign-in and account calls did not
    // (its fault control, read by the resilience panel, is a service call like the others).
    const post = sent.find((r) => r.method === 'POST' && r.url.startsWith(`${stack.urls.order}/orders`));
    assert.equal(post.auth, `Bearer ${token}`);
    const signIn = sent.filter((r) => r.url.startsWith(stack.urls.identity) && !r.url.includes('/admin/chaos'));
    assert.ok(signIn.length > 0);
    assert.ok(signIn.every((r) => r.auth === undefined));

    const callsBeforeReload = await page.locator('[data-testid="call-log"]').innerText();
    assert.match(callsBeforeReload, /POST\s+identity \/accounts\s+201/);
    assert.match(callsBeforeReload, /POST\s+identity \/sessions\s+200/);

    // A reload keeps the session (sessionStorage).
    await openShop(page, stack.pageUrl());
    await waitSignedIn(page);
    await page.locator(`[data-testid="history-list"] [data-order-id="${orderId}"]`).waitFor();

    await page.click('[data-testid="sign-out"]');
    assert.equal(await textOf(page, 'account-message'), 'You are signed out.');
    assert.equal(await sessionOf(page), null);
    await waitFor(page, 'the account\'s orders to go', (id) => !document.querySelector(`[data-order-id="${id}"]`)
      && document.querySelector('[data-testid="history-customer"]').textContent === 'none yet', orderId);
    assert.equal(await page.getAttribute('#customer-id', 'readonly'), null);

    // Neither the token nor the password went to the console or the call log.
    const logged = [...page.consoleText, callsBeforeReload, await page.locator('[data-testid="call-log"]').innerText()].join('\n');
    assert.ok(!logged.includes(token) && !logged.includes(CUSTOMER.password), 'no secret in the console or call log');
    assert.deepEqual(page.errors, []);
  });

  test('a wrong password shows the invalid-credentials words and signs nobody in', async () => {
    const page = await watchedPage(browser);
    await openShop(page, stack.pageUrl());
    await signIn(page, { email: CUSTOMER.email, password: 'not-the-password' });
    const problem = page.locator('[data-testid="account-result"] [data-testid="problem"]');
    await problem.waitFor();
    assert.equal(await problem.getAttribute('data-code'), 'invalid_credentials');
    assert.equal(await textOf(problem, 'problem-hint'), 'The email or the password is wrong. Check both and try again.');
    assert.match(await problem.innerText(), /Signing in failed/);
    assert.match(await problem.innerText(), /HTTP 401/);
    assert.doesNotMatch(await problem.innerText(), /[{}"]/);
    // The password is gone from the form; the email stays to correct it.
    assert.equal(await page.inputValue('#account-password'), '');
    assert.equal(await page.inputValue('#account-email'), CUSTOMER.email);
    assert.equal(await sessionOf(page), null);
    assert.equal(await page.locator('[data-testid="account-who"]').count(), 0);

    // A taken email, in words too.
    await page.click('[data-testid="account-cancel"]');
    await signUp(page, CUSTOMER);
    const taken = page.locator('[data-testid="account-result"] [data-testid="problem"]');
    await taken.waitFor();
    assert.equal(await taken.getAttribute('data-code'), 'email_taken');
    assert.ok(!page.consoleText.join('\n').includes('not-the-password'));
    assert.deepEqual(page.errors, []);
  });

  test('the operator restocks and reprices an item and sees both changes, made by them', async () => {
    const page = await watchedPage(browser);
    await openShop(page, stack.pageUrl());
    // Operator accounts are provisioned (IDENTITY_ACCOUNTS): signing up with the email is refused, in words.
    await signUp(page, OPERATOR);
    const taken = page.locator('[data-testid="account-result"] [data-testid="problem"]');
    await taken.waitFor();
    assert.equal(await taken.getAttribute('data-code'), 'email_taken');
    await page.click('[data-testid="account-cancel"]');
    await signIn(page, OPERATOR);
    await waitSignedIn(page);
    const { sub, scopes } = await sessionOf(page);
    assert.ok(scopes.includes('inventory:write') && scopes.includes('pricing:write'), scopes.join(' '));
    assert.equal(await textOf(page, 'account-status'), `Signed in as ${OPERATOR.email} (operator)`);
    const view = page.locator('[data-testid="operator"]');
    await view.waitFor();
    assert.equal(await page.isVisible('a[href="#operator"]'), true);

    await page.selectOption('#operator-sku', 'A003');
    const before = await shownStock(page, 'A003');
    assert.equal(await view.locator('[data-testid="operator-stock"]').getAttribute('data-stock'), String(before));

    await page.fill('#operator-delta', '7');
    await page.fill('#operator-reason', 'delivery from the supplier');
    await page.click('[data-testid="operator-restock"]');
    await view.locator('[data-testid="operator-stock-result"] [data-testid="operator-done"]').waitFor();
    await waitFor(page, 'the shop to show the new stock',
      (n) => document.querySelector('[data-testid="stock-A003"]').dataset.stock === String(n), before + 7);
    assert.equal(await view.locator('[data-testid="operator-stock"]').getAttribute('data-stock'), String(before + 7));

    // Taking away more than there is: 409 in words, nothing changes.
    await page.fill('#operator-delta', String(-(before + 1000)));
    await page.click('[data-testid="operator-restock"]');
    const refused = view.locator('[data-testid="operator-stock-result"] [data-testid="problem"]');
    await refused.waitFor();
    assert.equal(await refused.getAttribute('data-code'), 'insufficient_stock');
    assert.match(await refused.innerText(), /HTTP 409/);
    assert.equal(await shownStock(page, 'A003'), before + 7);

    await page.fill('#operator-base-price', '123.45');
    await page.fill('#operator-discount', '0');
    await page.click('[data-testid="operator-reprice"]');
    await view.locator('[data-testid="operator-price-result"] [data-testid="operator-done"]').waitFor();
    await waitFor(page, 'the shop to show the new price',
      () => document.querySelector('[data-testid="final-price-A003"]')?.textContent === '$123.45');
    assert.equal(await view.locator('[data-testid="operator-price"]').getAttribute('data-price'), '123.45');

    await waitFor(page, 'both changes in the history', () => {
      const changes = [...document.querySelectorAll('[data-testid="history-change"]')];
      return changes.some((c) => c.dataset.source === 'inventory' && c.dataset.kind === 'stock')
        && changes.some((c) => c.dataset.source === 'pricing');
    });
    const stockChange = view.locator('[data-testid="history-change"][data-source="inventory"][data-kind="stock"]').first();
    const priceChange = view.locator('[data-testid="history-change"][data-source="pricing"]').first();
    for (const change of [stockChange, priceChange]) {
      assert.equal(await change.getAttribute('data-actor'), sub);
      assert.match(await change.innerText(), new RegExp(`by you \\(${OPERATOR.email}\\)`));
    }
    assert.match(await stockChange.innerText(), /Added 7 to the stock \(delivery from the supplier\)/);
    assert.match(await priceChange.innerText(), /123\.45/);
    assert.deepEqual(page.errors, []);

    for (const [name, viewport] of [['accounts-desktop.png', DESKTOP], ['accounts-phone.png', PHONE]]) {
      await page.setViewportSize(viewport);
      assert.equal(await horizontalOverflow(page), 0, `${name}: nothing sticks out sideways`);
      await screenshot(page, name);
    }
  });

  test('a plain customer never sees the operator view', async () => {
    const page = await watchedPage(browser, PHONE);
    await openShop(page, stack.pageUrl());
    await signIn(page, CUSTOMER);
    await waitSignedIn(page);
    assert.equal(await page.isHidden('[data-testid="operator"]'), true);
    assert.equal(await page.isHidden('a[href="#operator"]'), true);
    // Opening the forms at phone width keeps everything on screen, and the keyboard reaches them.
    await page.click('[data-testid="sign-out"]');
    await page.focus('[data-testid="show-sign-in"]');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'account-email');
    assert.equal(await horizontalOverflow(page), 0);
    await page.keyboard.press('Escape');
    assert.equal(await page.isHidden('[data-testid="account-panel"]'), true);
    assert.equal(await page.evaluate(() => document.activeElement.dataset.testid), 'show-sign-in');
    assert.deepEqual(page.errors, []);
  });
});
