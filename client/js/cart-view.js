/**
 * The cart and the checkout: one line per item with −/+ buttons and a quantity
 * field, an estimated total from the catalogue's prices, the customer id, and
 * "Place order", whose result (or problem) shows below it.
 *
 * Each order attempt carries an Idempotency-Key. A new key is made for every
 * attempt, except that a retry after an attempt whose outcome is unknown (timeout,
 * connection lost) reuses it, so the order service cannot take the order twice.
 */

import { h, fill, spinner, busy, keepFocus } from './dom.js';
import { orderApi, newIdempotencyKey } from './api.js';
import { cart, catalogue, customer, MAX_CART_QUANTITY } from './state.js';
import { renderProblem } from './problem.js';
import { orderCard } from './orders.js';
import { money, sumMoney, plural } from './format.js';

const UNKNOWN_OUTCOME = new Set(['timeout', 'unreachable']);

function renderLine({ sku, quantity }) {
  const item = catalogue.item(sku);
  const price = catalogue.price(sku);
  const name = item ? item.name : sku;
  const inputId = `qty-${sku}`;
  const overStock = item && quantity > item.stock;
  return h('li', { class: 'cart-line', 'data-testid': `cart-line-${sku}` },
    h('div', { class: 'cart-line-name' },
      h('span', {}, name), ' ', h('span', { class: 'sku' }, sku),
      price ? h('span', { class: 'quiet cart-unit' }, `${money(price.final_price, price.currency)} each`) : null),
    h('div', { class: 'stepper' },
      h('button', {
        type: 'button',
        class: 'button button-icon',
        'data-testid': `dec-${sku}`,
        'aria-label': `One fewer ${name}`,
        // aria-disabled rather than disabled: a disabled button would drop the keyboard focus.
        'aria-disabled': quantity <= 1 ? 'true' : null,
        onclick: () => quantity > 1 && cart.set(sku, quantity - 1),
      }, '−'),
      h('label', { for: inputId, class: 'visually-hidden' }, `Quantity of ${name}`),
      h('input', {
        id: inputId,
        type: 'number',
        inputmode: 'numeric',
        min: '1',
        max: String(MAX_CART_QUANTITY),
        value: String(quantity),
        'data-testid': `qty-${sku}`,
        // Commit on change (blur/enter), not on every keystroke, so typing "25" is not "2" first.
        onchange: (event) => cart.set(sku, event.target.value),
      }),
      h('button', {
        type: 'button',
        class: 'button button-icon',
        'data-testid': `inc-${sku}`,
        'aria-label': `One more ${name}`,
        'aria-disabled': quantity >= MAX_CART_QUANTITY ? 'true' : null,
        onclick: () => quantity < MAX_CART_QUANTITY && cart.set(sku, quantity + 1),
      }, '+')),
    h('span', { class: 'cart-line-total num' }, price ? money(sumMoney([price.final_price * quantity]), price.currency) : '—'),
    h('button', {
      type: 'button',
      class: 'button button-link',
      'data-testid': `remove-${sku}`,
      'aria-label': `Remove ${name} from the cart`,
      onclick: () => cart.remove(sku),
    }, 'Remove'),
    overStock ? h('p', { class: 'cart-warning', 'data-testid': `over-stock-${sku}` },
      `Only ${item.stock} in stock: the order will be refused unless stock comes back.`) : null);
}

/**
 * Mounts the cart in `root` (the section). `onOrderPlaced(order)` runs after an
 * order is taken (the page reloads the catalogue and the history then);
 * `onOrderRefused(error)` after an attempt that did not go through (the service
 * keeps refused and failed attempts in the history, so the page reloads it).
 */
export function mountCart(root, { onOrderPlaced, onOrderRefused, onCancelled }) {
  const lines = root.querySelector('[data-role="lines"]');
  const summary = root.querySelector('[data-role="summary"]');
  const form = root.querySelector('form');
  const customerInput = form.querySelector('#customer-id');
  const submit = form.querySelector('[type="submit"]');
  const result = root.querySelector('[data-role="result"]');
  const badge = document.querySelector('[data-role="cart-count"]');
  const heading = root.querySelector('h2');

  // The key of an attempt whose outcome is unknown, and what it was for.
  let pending = null;

  function render() {
    const current = cart.lines();
    keepFocus(lines, () => fill(lines, current.map(renderLine)), heading);
    if (current.length === 0) {
      fill(summary, h('p', { class: 'quiet', 'data-testid': 'cart-empty' }, 'Your cart is empty. Add items from the shop.'));
    } else {
      const priced = current.every(({ sku }) => catalogue.price(sku));
      const currency = catalogue.price(current[0].sku)?.currency || 'USD';
      const estimate = sumMoney(current.map(({ sku, quantity }) => (catalogue.price(sku)?.final_price || 0) * quantity));
      fill(summary,
        h('p', { class: 'cart-estimate' },
          `${plural(cart.units, 'unit')} · estimated total `,
          h('strong', { 'data-testid': 'cart-estimate' }, priced ? money(estimate, currency) : 'not known yet')),
        h('p', { class: 'quiet small' }, 'The order service sets the final price (bulk discounts start at 10 units).'));
    }
    submit.disabled = current.length === 0;
    if (badge) fill(badge, cart.units ? `(${cart.units})` : '');
  }

  async function placeOrder() {
    const customerId = customer.fromAccount ? customer.id : customerInput.value.trim();
    if (!customerId) {
      customerInput.setAttribute('aria-invalid', 'true');
      fill(result, h('p', { class: 'problem', 'data-testid': 'problem' },
        h('strong', { 'data-testid': 'problem-title' }, 'A customer id is needed'), ' ',
        h('span', { 'data-testid': 'problem-detail' }, 'Enter who the order is for, e.g. your email or account id.')));
      customerInput.focus();
      return;
    }
    customerInput.removeAttribute('aria-invalid');
    customer.id = customerId;
    const body = { customer_id: customerId, items: cart.lines() };
    const fingerprint = JSON.stringify(body);
    const key = pending && pending.fingerprint === fingerprint ? pending.key : newIdempotencyKey();
    submit.disabled = true;
    submit.setAttribute('aria-busy', 'true');
    const label = submit.textContent;
    submit.textContent = 'Placing order…';
    fill(result, h('p', { class: 'quiet' }, spinner('Placing the order…'), ' Placing the order…'));
    try {
      const { data: order } = await busy(result, () => orderApi.placeOrder(body, key));
      pending = null;
      cart.clear();
      fill(result,
        h('p', { class: 'result-headline', 'data-testid': 'order-placed' },
          order.status === 'pending_pricing' ? 'Order taken, waiting for a price.' : 'Thank you, your order is placed.'),
        orderCard(order, { onCancelled, headingLevel: 'h3' }));
      root.dataset.lastOrderId = order.order_id;
      if (onOrderPlaced) onOrderPlaced(order);
    } catch (error) {
      const code = error.problem?.code;
      pending = UNKNOWN_OUTCOME.has(code) ? { key, fingerprint } : null;
      fill(result, renderProblem(error, 'Placing the order'),
        pending ? h('p', { class: 'note' }, 'Trying again is safe: the retry uses the same idempotency key, so the order cannot be taken twice.') : null);
      if (onOrderRefused) onOrderRefused(error);
    } finally {
      submit.textContent = label;
      submit.removeAttribute('aria-busy');
      submit.disabled = cart.size === 0;
    }
  }

  const hint = form.querySelector('#customer-hint');
  const typedHint = hint.textContent;
  /** Signed in, the id is the account's: shown, read-only, and what orders are placed as. */
  function showCustomer() {
    customerInput.value = customer.id;
    customerInput.readOnly = customer.fromAccount;
    customerInput.removeAttribute('aria-invalid');
    hint.textContent = customer.fromAccount
      ? 'Your account’s id: orders are placed and listed as you.'
      : typedHint;
  }

  showCustomer();
  customer.subscribe(showCustomer);
  customerInput.addEventListener('change', () => {
    customer.id = customerInput.value;
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    placeOrder();
  });
  cart.subscribe(render);
  catalogue.subscribe(render);
  render();
  return { placeOrder };
}
