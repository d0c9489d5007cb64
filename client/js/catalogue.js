/**
 * The shop front: every item grouped by category, with its stock and price
 * (a discount shows the base price struck through, the final price and the
 * percentage), and an "Add to cart" button.
 *
 * Items come from inventory, prices from pricing, the category summaries from
 * inventory's /categories. Each can fail on its own: without prices the items
 * still show (the order service prices orders itself, from its last known
 * prices when pricing is down).
 */

import { h, fill, srOnly, spinner, busy, keepFocus } from './dom.js';
import { inventoryApi, pricingApi } from './api.js';
import { catalogue, cart } from './state.js';
import { renderProblem } from './problem.js';
import { money, percentOff, stockText, titleCase, plural } from './format.js';

/** The price block of an item: final price, and base price + percentage when discounted. */
export function renderPrice(price) {
  const final = h('strong', { class: 'final-price', 'data-testid': `final-price-${price.sku}` },
    money(price.final_price, price.currency));
  if (!price.discounted) {
    return h('p', { class: 'price', 'data-testid': `price-${price.sku}` }, final);
  }
  return h('p', { class: 'price', 'data-testid': `price-${price.sku}` },
    h('s', { class: 'base-price', 'data-testid': `base-price-${price.sku}` },
      srOnly('Was '), money(price.base_price, price.currency)),
    ' ',
    srOnly('now '),
    final,
    ' ',
    h('span', { class: 'badge badge-discount', 'data-testid': `discount-${price.sku}` },
      percentOff(price.discount_percent), srOnly(' off')));
}

function inCartText(sku) {
  const n = cart.quantities.get(sku) || 0;
  return n ? `${n} in cart` : '';
}

function renderItem(item, price) {
  const soldOut = item.stock === 0;
  const inCart = inCartText(item.sku);
  return h('li', { class: `item${soldOut ? ' item-sold-out' : ''}`, 'data-testid': `item-${item.sku}`, 'data-sku': item.sku },
    h('div', { class: 'item-head' },
      h('h4', { class: 'item-name' }, item.name),
      h('span', { class: 'sku' }, srOnly('SKU '), item.sku)),
    h('p', { class: 'stock-line' },
      h('span', {
        class: `stock${soldOut ? ' stock-out' : item.stock < 25 ? ' stock-low' : ''}`,
        'data-testid': `stock-${item.sku}`,
        'data-stock': item.stock,
      }, stockText(item.stock)),
      ' ',
      h('span', { class: 'badge badge-cart', 'data-testid': `in-cart-${item.sku}`, hidden: !inCart }, inCart)),
    price
      ? renderPrice(price)
      : h('p', { class: 'price price-missing', 'data-testid': `price-${item.sku}` }, 'Price unavailable'),
    h('button', {
      type: 'button',
      class: 'button',
      'data-testid': `add-${item.sku}`,
      disabled: soldOut,
      'aria-label': soldOut ? `${item.name} is out of stock` : `Add ${item.name} to cart`,
      onclick: () => cart.add(item.sku),
    }, soldOut ? 'Sold out' : 'Add to cart'));
}

/** Groups items by category, in the order /categories gave (then any others). */
function groupByCategory(items, categories) {
  const groups = new Map();
  for (const c of categories) groups.set(c.name, { summary: c, items: [] });
  for (const item of items) {
    if (!groups.has(item.category)) groups.set(item.category, { summary: null, items: [] });
    groups.get(item.category).items.push(item);
  }
  return [...groups].filter(([, g]) => g.items.length > 0);
}

/**
 * Mounts the catalogue in `root` (the section). Returns `{ reload }`, which
 * fetches everything again (after an order or a cancellation, to show stock).
 */
export function mountCatalogue(root) {
  const status = root.querySelector('[data-role="status"]');
  const list = root.querySelector('[data-role="list"]');
  const reloadButton = root.querySelector('[data-role="reload"]');
  let categories = [];
  let pricesProblem = null;
  let loading = null;

  function render() {
    const items = [...catalogue.items.values()];
    keepFocus(list, () => fill(list, groupByCategory(items, categories).map(([name, group]) => {
      const stock = group.summary ? group.summary.stock : group.items.reduce((n, i) => n + i.stock, 0);
      const headingId = `category-${name}-heading`;
      return h('section', { class: 'category', 'data-testid': `category-${name}`, 'aria-labelledby': headingId },
        h('h3', { id: headingId },
          titleCase(name),
          h('span', { class: 'category-meta' }, `${plural(group.items.length, 'item')} · ${stock} in stock`)),
        h('ul', { class: 'items' }, group.items.map((item) => renderItem(item, catalogue.price(item.sku)))));
    })));
  }

  /** Cart changes only touch the "in cart" badges, so the focus stays where it is. */
  function updateInCart() {
    for (const sku of catalogue.items.keys()) {
      const badge = list.querySelector(`[data-testid="in-cart-${CSS.escape(sku)}"]`);
      if (!badge) continue;
      badge.textContent = inCartText(sku);
      badge.hidden = !badge.textContent;
    }
  }

  async function load() {
    fill(status, spinner('Loading the catalogue…'));
    const [items, prices, cats] = await Promise.allSettled([
      inventoryApi.listItems(),
      pricingApi.listPrices(),
      inventoryApi.listCategories(),
    ]);
    if (cats.status === 'fulfilled') categories = cats.value.data.categories;
    pricesProblem = prices.status === 'rejected' ? prices.reason : null;
    catalogue.update({
      items: items.status === 'fulfilled' ? items.value.data.items : null,
      prices: prices.status === 'fulfilled' ? prices.value.data.prices : null,
    });

    const notes = [];
    if (items.status === 'rejected') {
      notes.push(renderProblem(items.reason, 'Loading the items'));
    }
    if (pricesProblem) {
      notes.push(renderProblem(pricesProblem, 'Loading the prices'),
        h('p', { class: 'note' }, catalogue.prices.size
          ? 'Showing the prices last seen. Orders are still taken: the order service uses its last known prices.'
          : 'Orders are still taken: the order service uses its last known prices, or marks the order as waiting for a price.'));
    }
    const count = catalogue.items.size;
    fill(status, notes.length ? notes : h('p', { class: 'quiet', 'data-testid': 'catalogue-summary' },
      `${plural(count, 'item')} in ${plural(categories.length || new Set([...catalogue.items.values()].map((i) => i.category)).size, 'category', 'categories')}.`));
    root.dataset.loaded = 'true';
  }

  function reload() {
    // Calls that arrive while a load runs join it instead of starting another.
    if (!loading) {
      reloadButton.disabled = true;
      loading = busy(root, load).finally(() => {
        loading = null;
        reloadButton.disabled = false;
      });
    }
    return loading;
  }

  reloadButton.addEventListener('click', () => reload());
  catalogue.subscribe(render);
  cart.subscribe(updateInCart);
  return { reload };
}
