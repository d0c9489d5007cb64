/**
 * Orders on screen: one card per order (status, lines, total, whether it was
 * priced live or from fallback prices, a cancel button) and the customer's
 * order history, page by page, with the attempts that did not go through apart.
 */

import { h, fill, srOnly, spinner, busy } from './dom.js';
import { orderApi } from './api.js';
import { customer } from './state.js';
import { renderProblem } from './problem.js';
import { money, percentOff, dateTime, shortId, plural } from './format.js';

const STATUS_TEXT = {
  confirmed: 'Confirmed',
  pending_pricing: 'Waiting for a price',
  pending: 'Being processed',
  cancelled: 'Cancelled',
  rejected: 'Refused',
  failed: 'Failed',
};

/** Only an order that holds stock can be cancelled. */
const CANCELLABLE = new Set(['confirmed', 'pending_pricing']);

/** Orders that went through (or may still): they hold, held or will hold stock. */
export const PLACED_STATUSES = ['pending', 'confirmed', 'pending_pricing', 'cancelled'];
/** Attempts that did not go through: nothing was reserved or charged. */
export const ATTEMPT_STATUSES = ['rejected', 'failed'];

function statusBadge(status) {
  return h('span', { class: `badge badge-status badge-${status}`, 'data-testid': 'order-status', 'data-status': status },
    STATUS_TEXT[status] || status);
}

function pricingBadge(pricing) {
  if (!pricing) return null;
  const live = pricing === 'live';
  return h('span', {
    class: `badge ${live ? 'badge-live' : 'badge-fallback'}`,
    'data-testid': 'order-pricing',
    'data-pricing': pricing,
    title: live ? 'Priced by the pricing service when the order was placed' : 'Priced from the last known prices',
  }, live ? 'Live prices' : 'Fallback prices');
}

/** Plain words for what the status and pricing mean to the customer. */
function explanation(order) {
  const unpriced = order.items.filter((line) => line.unit_price === null || line.unit_price === undefined);
  if (order.status === 'pending_pricing') {
    const names = unpriced.map((line) => line.name || line.sku).join(', ');
    return `Your items are reserved, but we could not price ${names || 'some of them'} yet: the pricing service `
      + 'is unavailable and we have no earlier price to go by. The total will be worked out as soon as pricing is '
      + 'back; nothing is charged until then.';
  }
  if (order.status === 'cancelled') {
    return 'This order was cancelled and its items went back into stock.';
  }
  if (order.status === 'rejected') {
    return `The order was refused${order.failure_reason ? ` (${order.failure_reason})` : ''}; nothing was reserved.`;
  }
  if (order.status === 'failed') {
    return `The order could not be completed${order.failure_reason ? ` (${order.failure_reason})` : ''}; `
      + 'nothing is held and nothing is charged.';
  }
  if (order.pricing === 'fallback') {
    return 'The pricing service could not be reached, so this order was priced from the last prices we saw for '
      + 'these items.';
  }
  return null;
}

function renderLines(order) {
  const currency = order.currency || 'USD';
  // An attempt that did not go through will never be priced.
  const unpriced = ATTEMPT_STATUSES.includes(order.status) ? '—' : h('span', { class: 'quiet' }, 'not priced yet');
  return h('table', { class: 'order-lines' },
    h('caption', { class: 'visually-hidden' }, `Items of order ${shortId(order.order_id)}`),
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Item'),
      h('th', { scope: 'col', class: 'num' }, 'Qty'),
      h('th', { scope: 'col', class: 'num' }, 'Unit price'),
      h('th', { scope: 'col', class: 'num' }, 'Line total'))),
    h('tbody', {}, order.items.map((line) => h('tr', { 'data-testid': `order-line-${line.sku}` },
      h('th', { scope: 'row' }, line.name || line.sku, ' ', h('span', { class: 'sku' }, line.sku)),
      h('td', { class: 'num' }, line.quantity),
      h('td', { class: 'num' },
        line.unit_price === null || line.unit_price === undefined
          ? unpriced
          : money(line.unit_price, currency),
        line.discount_percent ? [' ', h('span', { class: 'badge badge-discount' }, percentOff(line.discount_percent), srOnly(' off'))] : null),
      h('td', { class: 'num' }, money(line.line_total, currency))))));
}

/**
 * One order as a card. `onCancelled(order)` runs after a successful cancellation
 * (the page reloads the catalogue then, to show the stock that came back).
 */
export function orderCard(order, { onCancelled, headingLevel = 'h3' } = {}) {
  const id = order.order_id;
  const currency = order.currency || 'USD';
  const feedback = h('div', { class: 'order-feedback', role: 'status', 'aria-live': 'polite' });
  const note = explanation(order);
  const totalKnown = order.total !== null && order.total !== undefined;
  const attempt = ATTEMPT_STATUSES.includes(order.status);
  const card = h('article', {
    class: `order order-${order.status}`,
    'data-testid': `order-${id}`,
    'data-order-id': id,
    'data-status': order.status,
    'data-pricing': order.pricing || '',
    'aria-labelledby': `order-${id}-heading`,
  },
  h('header', { class: 'order-head' },
    h(headingLevel, { id: `order-${id}-heading`, tabindex: '-1' }, attempt ? 'Attempt ' : 'Order ', h('code', { title: id }, shortId(id))),
    h('span', { class: 'order-badges' }, statusBadge(order.status), ' ', pricingBadge(order.pricing))),
  note ? h('p', { class: `order-note order-note-${order.status === 'confirmed' ? order.pricing : order.status}`, 'data-testid': 'order-note' }, note) : null,
  renderLines(order),
  h('p', { class: 'order-total', 'data-testid': 'order-total', 'data-total': totalKnown ? order.total : '' },
    attempt && !totalKnown ? 'Nothing charged'
      : ['Total ', h('strong', {}, totalKnown ? money(order.total, currency) : 'to be confirmed')]),
  h('p', { class: 'order-meta quiet' },
    `${attempt ? 'Tried' : 'Placed'} ${dateTime(order.created_at)} by `, h('code', {}, order.customer_id),
    ` · ${plural(order.items.reduce((n, l) => n + l.quantity, 0), 'unit')}`),
  !CANCELLABLE.has(order.status) ? null : h('button', {
    type: 'button',
    class: 'button button-secondary',
    'data-testid': `cancel-${id}`,
    'aria-label': `Cancel order ${shortId(id)}`,
    onclick: (event) => cancel(event.currentTarget),
  }, 'Cancel order'),
  feedback);

  async function cancel(button) {
    button.disabled = true;
    fill(feedback, spinner('Cancelling…'), ' Cancelling…');
    try {
      const { data } = await busy(card, () => orderApi.cancelOrder(id));
      const replacement = orderCard(data, { onCancelled, headingLevel });
      card.replaceWith(replacement);
      replacement.querySelector(headingLevel).focus();
      fill(replacement.querySelector('.order-feedback'), 'Order cancelled. Its items are back in stock.');
      if (onCancelled) onCancelled(data);
    } catch (error) {
      button.disabled = false;
      fill(feedback, renderProblem(error, 'Cancelling the order'));
    }
  }

  return card;
}

/** Orders per page of the history; "Show older" fetches the next page. */
export const HISTORY_PAGE_SIZE = 20;

/**
 * One list of the history, page by page: the orders of `statuses`, newest first,
 * in `root` (its `status`, `list` and `more` elements). The service pages with an
 * opaque cursor: each answer's `next_cursor` fetches the next, older page, and is
 * null on the last one. `words` says how to count (`one`, `many`), and what to say
 * with no orders (`none`) and with no customer (`nobody`).
 */
function pagedList(root, { statuses, words, countTestId, headingLevel, onCancelled, onShown }) {
  const status = root.querySelector('[data-role="status"]');
  const list = root.querySelector('[data-role="list"]');
  const more = root.querySelector('[data-role="more"]');
  const moreLabel = more.textContent;
  let customerId = null;
  let cursor = null;
  let shown = 0;
  // A reset (another customer, a refresh) starts a new generation: answers to an
  // older one are dropped, so a slow page of the last customer never lands here.
  let generation = 0;

  function summary() {
    if (!shown) return words.none;
    const counted = plural(shown, words.one, words.many);
    return cursor ? `${counted} shown, newest first; older ones follow.` : `${counted}, newest first.`;
  }

  async function page(reset) {
    if (reset) {
      generation += 1;
      cursor = null;
      shown = 0;
      fill(status, spinner('Loading…'));
      more.hidden = true;
    } else {
      more.disabled = true;
      more.setAttribute('aria-busy', 'true');
      more.textContent = 'Loading…';
    }
    const mine = generation;
    try {
      const { data } = await orderApi.listOrders(customerId, { status: statuses, cursor, limit: HISTORY_PAGE_SIZE });
      if (mine !== generation) return;
      const hadFocus = document.activeElement === more;
      const items = data.orders.map((order) => h('li', {}, orderCard(order, { onCancelled, headingLevel })));
      if (reset) fill(list, items);
      else list.append(...items);
      shown += data.orders.length;
      cursor = data.next_cursor || null;
      fill(status, h('p', { class: 'quiet', 'data-testid': countTestId }, summary()));
      more.hidden = !cursor;
      // The button goes with the last page: keep keyboard users on the first new order.
      if (hadFocus && more.hidden && items.length) items[0].querySelector(headingLevel).focus();
      if (onShown) onShown(shown);
    } catch (error) {
      if (mine !== generation) return;
      fill(status, renderProblem(error, 'Loading the orders'));
      more.hidden = !cursor;
    } finally {
      more.disabled = false;
      more.removeAttribute('aria-busy');
      more.textContent = moreLabel;
    }
  }

  more.addEventListener('click', () => busy(root, () => page(false)));

  return {
    /** Back to the newest page, for `id` (null: nobody, an empty list). */
    reset(id) {
      customerId = id;
      if (!id) {
        generation += 1;
        cursor = null;
        shown = 0;
        fill(list);
        fill(status, words.nobody ? h('p', { class: 'quiet' }, words.nobody) : null);
        more.hidden = true;
        return Promise.resolve();
      }
      return page(true);
    },
  };
}

/**
 * The order history of the current customer, in `root` (the section): the orders
 * that went through, and apart from them the attempts that did not (refused or
 * failed: part of the history, but nothing was reserved or charged). Each list
 * pages on its own, so many failed attempts never push real orders out of sight.
 * Returns `{ reload }`; `onCancelled` as for `orderCard`.
 */
export function mountHistory(root, { onCancelled }) {
  const who = root.querySelector('[data-role="customer"]');
  const reloadButton = root.querySelector('[data-role="reload"]');
  const attemptsSection = root.querySelector('[data-role="attempts"]');
  const placed = pagedList(root.querySelector('[data-role="placed"]'), {
    statuses: PLACED_STATUSES,
    words: { one: 'order', many: 'orders', none: 'No orders yet.', nobody: 'Enter a customer id in the cart to see its orders.' },
    countTestId: 'history-count',
    headingLevel: 'h3',
    onCancelled,
  });
  const attempts = pagedList(attemptsSection, {
    statuses: ATTEMPT_STATUSES,
    words: { one: 'attempt', many: 'attempts', none: 'None.' },
    countTestId: 'attempts-count',
    headingLevel: 'h4',
    onCancelled,
    // Shown only when there is something to show.
    onShown: (n) => { attemptsSection.hidden = n === 0; },
  });

  async function load() {
    const customerId = customer.id;
    fill(who, customerId ? h('code', {}, customerId) : 'none yet');
    if (!customerId) attemptsSection.hidden = true;
    await Promise.all([placed.reset(customerId || null), attempts.reset(customerId || null)]);
  }

  function reload() {
    return busy(root, load);
  }

  reloadButton.addEventListener('click', () => reload());
  return { reload };
}
