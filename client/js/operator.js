/**
 * The operator view, shown only when the signed-in token carries
 * `inventory:write` or `pricing:write` (the services check every change; the page
 * only shows what the token says may work). For one item at a time: its stock and
 * price, "Change stock" (units to add or take away, and why), "Set price" (base
 * price, discount, quantity tiers), and its changes from both services, newest
 * first, with who made each and when.
 */

import { h, fill, spinner, busy } from './dom.js';
import { inventoryApi, pricingApi } from './api.js';
import { catalogue } from './state.js';
import { session } from './session.js';
import { renderProblem } from './problem.js';
import { money, percentOff, dateTime, stockText } from './format.js';

const OPERATOR_SCOPES = ['inventory:write', 'pricing:write'];

/** Whether the signed-in token carries a scope the operator view is for. */
export function isOperator() {
  return OPERATOR_SCOPES.some((scope) => session.has(scope));
}

/**
 * "10:5, 50:10" -> the item's own tiers; "none" -> [] (no quantity discount);
 * empty -> null (leave `tiers` out: the catalogue's tiers apply). Throws with
 * words when it does not read.
 */
export function parseTiers(text) {
  const trimmed = String(text).trim();
  if (!trimmed) return null;
  if (trimmed.toLowerCase() === 'none') return [];
  const tiers = [];
  for (const part of String(text).split(',').map((p) => p.trim()).filter(Boolean)) {
    const match = /^(\d+)\s*:\s*(\d+)\s*%?$/.exec(part);
    if (!match) throw new Error(`“${part}” is not “minimum quantity:percent”, e.g. 10:5`);
    tiers.push({ min_quantity: Number(match[1]), discount_percent: Number(match[2]) });
  }
  return tiers;
}

function tiersText(tiers) {
  return tiers.map((t) => `${t.min_quantity}+ units ${percentOff(t.discount_percent)}`).join(', ');
}

const FIELD_WORDS = {
  base_price: (v) => `base ${money(v)}`,
  final_price: (v) => `final ${money(v)}`,
  discount_percent: (v) => `discount ${v}%`,
  tiers: (v) => {
    if (v === null) return 'the catalogue’s quantity discounts';
    return Array.isArray(v) && v.length ? `tiers ${tiersText(v)}` : 'no quantity discount';
  },
  name: (v) => `name “${v}”`,
  category: (v) => `category ${v}`,
  reason: (v) => `reason “${v}”`,
  stock_after: (v) => `${stockText(v).toLowerCase()} after`,
};

/** What one change did, in words. */
export function describeChange(change) {
  const { kind, delta, reason } = change;
  if (kind === 'stock' && Number.isFinite(delta)) {
    const what = delta >= 0 ? `Added ${delta} to the stock` : `Took ${-delta} from the stock`;
    return [what, reason ? ` (${reason})` : '',
      Number.isFinite(change.stock_after) ? `: ${stockText(change.stock_after).toLowerCase()} after` : ''].join('');
  }
  const skip = new Set(['at', 'actor', 'kind', 'source', 'sku']);
  const facts = Object.entries(change)
    .filter(([key, value]) => !skip.has(key) && value !== undefined && (value !== null || key === 'tiers'))
    .map(([key, value]) => (FIELD_WORDS[key] ? FIELD_WORDS[key](value) : `${key.replace(/_/g, ' ')} ${typeof value === 'object' ? JSON.stringify(value) : value}`));
  const head = { created: 'Created', updated: 'Updated', price: 'Price set', stock: 'Stock changed' }[kind]
    || (kind ? kind.replace(/_/g, ' ') : 'Changed');
  return facts.length ? `${head}: ${facts.join(', ')}` : head;
}

function who(actor) {
  if (actor && actor === session.sub) return `you (${session.displayName})`;
  return actor || 'unknown';
}

function renderChange(change) {
  return h('li', {
    class: 'change',
    'data-testid': 'history-change',
    'data-source': change.source,
    'data-kind': change.kind || '',
    'data-actor': change.actor || '',
  },
  h('p', { class: 'change-what' }, describeChange(change)),
  h('p', { class: 'change-meta quiet small' },
    h('time', { datetime: String(change.at) }, dateTime(change.at)),
    ` · by ${who(change.actor)} · ${change.source}`));
}

function numberField(id, label, attrs) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, type: 'number', required: true, 'aria-required': 'true', 'data-testid': id, ...attrs }));
}

function textField(id, label, attrs = {}, hint = null) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, type: 'text', spellcheck: 'false', 'aria-describedby': hint ? `${id}-hint` : null, 'data-testid': id, ...attrs }),
    hint ? h('p', { id: `${id}-hint`, class: 'quiet small' }, hint) : null);
}

/**
 * Mounts the operator view in `root` (its section). `onChanged()` runs after a
 * change went through (the page reloads the catalogue then).
 */
export function mountOperator(root, { onChanged }) {
  const body = root.querySelector('[data-role="body"]');
  const navLink = document.querySelector('[data-role="nav-operator"]');
  const select = h('select', { id: 'operator-sku', 'data-testid': 'operator-sku' });
  const facts = h('dl', { class: 'facts operator-facts', 'data-testid': 'operator-facts' });

  const stockResult = h('div', { class: 'operator-result', role: 'status', 'aria-live': 'polite', 'data-testid': 'operator-stock-result' });
  const stockForm = h('form', { class: 'operator-form', novalidate: true, 'data-testid': 'operator-stock-form' },
    h('fieldset', {},
      h('legend', {}, 'Change the stock'),
      numberField('operator-delta', 'Units to add (negative takes away)', { step: '1', inputmode: 'numeric' }),
      textField('operator-reason', 'Reason', { required: true, 'aria-required': 'true', maxlength: '200' }),
      h('button', { type: 'submit', class: 'button', 'data-testid': 'operator-restock' }, 'Change stock')),
    stockResult);

  const priceResult = h('div', { class: 'operator-result', role: 'status', 'aria-live': 'polite', 'data-testid': 'operator-price-result' });
  const priceForm = h('form', { class: 'operator-form', novalidate: true, 'data-testid': 'operator-price-form' },
    h('fieldset', {},
      h('legend', {}, 'Set the price'),
      numberField('operator-base-price', 'Base price (USD)', { step: '0.01', min: '0', inputmode: 'decimal' }),
      numberField('operator-discount', 'Discount (%)', { step: '1', min: '0', max: '100', inputmode: 'numeric' }),
      textField('operator-tiers', 'Quantity discounts (optional)', { placeholder: '10:5, 50:10' },
        'Minimum quantity:percent pairs, e.g. 10:5, 50:10; “none” for no quantity discount; empty: the catalogue’s.'),
      h('button', { type: 'submit', class: 'button', 'data-testid': 'operator-reprice' }, 'Set price')),
    priceResult);

  const historyStatus = h('div', { role: 'status', 'aria-live': 'polite', 'data-testid': 'operator-history-status' });
  const historyList = h('ul', { class: 'changes', 'data-testid': 'operator-history' });
  const historyRefresh = h('button', { type: 'button', class: 'button button-secondary', 'data-testid': 'operator-history-refresh', onclick: () => loadHistory() }, 'Refresh');

  fill(body,
    h('div', { class: 'field' }, h('label', { for: 'operator-sku' }, 'Item'), select),
    facts,
    h('div', { class: 'operator-forms' }, stockForm, priceForm),
    h('div', { class: 'section-head' }, h('h3', { id: 'operator-history-heading' }, 'Changes to this item'), historyRefresh),
    historyStatus,
    historyList);
  historyList.setAttribute('aria-labelledby', 'operator-history-heading');

  const value = (id) => body.querySelector(`#${id}`);
  let historyGeneration = 0;

  function sku() {
    return select.value;
  }

  function renderOptions() {
    const chosen = sku();
    const items = [...catalogue.items.values()];
    fill(select, items.map((item) => h('option', { value: item.sku, selected: item.sku === chosen }, `${item.sku} · ${item.name}`)));
    if (!chosen && items.length) select.value = items[0].sku;
  }

  function renderFacts() {
    const item = catalogue.item(sku());
    const price = catalogue.price(sku());
    fill(facts,
      h('div', {}, h('dt', {}, 'Stock'), h('dd', { 'data-testid': 'operator-stock', 'data-stock': item ? item.stock : '' },
        item ? stockText(item.stock) : '—')),
      h('div', {}, h('dt', {}, 'Price'), h('dd', { 'data-testid': 'operator-price', 'data-price': price ? price.final_price : '' },
        price ? [money(price.final_price, price.currency),
          price.discounted ? ` (${percentOff(price.discount_percent)} off ${money(price.base_price, price.currency)})` : ''] : '—')));
  }

  /** The price form starts from the item's current price. */
  function prefillPrice() {
    const price = catalogue.price(sku());
    value('operator-base-price').value = price ? String(price.base_price) : '';
    value('operator-discount').value = price ? String(price.discount_percent) : '0';
  }

  async function loadHistory() {
    const mine = ++historyGeneration;
    const current = sku();
    if (!current) return;
    fill(historyStatus, spinner('Loading the changes…'));
    // Each history is for the holders of that service's write scope.
    const sources = [
      ['inventory', session.has('inventory:write') ? inventoryApi.history(current) : null],
      ['pricing', session.has('pricing:write') ? pricingApi.history(current) : null],
    ].filter(([, call]) => call);
    const answers = await busy(historyList, () => Promise.allSettled(sources.map(([, call]) => call)));
    if (mine !== historyGeneration) return;
    const changes = [];
    const problems = [];
    answers.forEach((answer, i) => {
      const source = sources[i][0];
      if (answer.status === 'fulfilled') {
        // Pricing's changes are all prices set; they carry no `kind`.
        for (const change of answer.value.data.changes || []) changes.push({ kind: source === 'pricing' ? 'price' : '', ...change, source });
      } else {
        problems.push(renderProblem(answer.reason, `Loading the ${source} changes`));
      }
    });
    changes.sort((a, b) => new Date(b.at) - new Date(a.at));
    fill(historyList, changes.map(renderChange));
    fill(historyStatus, problems,
      h('p', { class: 'quiet small', 'data-testid': 'operator-history-count' },
        changes.length ? `${changes.length} change${changes.length === 1 ? '' : 's'}, newest first.` : 'No changes recorded yet.'));
    historyList.dataset.loaded = current;
  }

  async function submitChange(form, result, { check, send, done }) {
    const button = form.querySelector('[type="submit"]');
    let args;
    try {
      args = check();
    } catch (error) {
      fill(result, h('div', { class: 'problem', 'data-testid': 'problem', 'data-code': 'invalid_input' },
        h('p', { class: 'problem-title' }, h('strong', { 'data-testid': 'problem-title' }, error.message))));
      return;
    }
    button.disabled = true;
    fill(result, spinner('Saving…'), ' Saving…');
    try {
      const { data } = await busy(form, () => send(args));
      fill(result, h('p', { class: 'operator-done', 'data-testid': 'operator-done' }, done(data)));
      if (onChanged) await onChanged();
      loadHistory();
    } catch (error) {
      fill(result, renderProblem(error, 'Saving the change'));
    } finally {
      button.disabled = false;
    }
  }

  stockForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const current = sku();
    submitChange(stockForm, stockResult, {
      check: () => {
        const delta = Number(value('operator-delta').value);
        const reason = value('operator-reason').value.trim();
        if (!Number.isInteger(delta) || delta === 0) throw new Error('Enter a whole number of units other than 0');
        if (!reason) throw new Error('Say why the stock changes');
        return { delta, reason };
      },
      send: (change) => inventoryApi.adjustStock(current, change),
      done: (item) => `${item.sku}: ${stockText(item.stock).toLowerCase()} now.`,
    });
  });

  priceForm.addEventListener('submit', (event) => {
    event.preventDefault();
    const current = sku();
    submitChange(priceForm, priceResult, {
      check: () => {
        const base = Number(value('operator-base-price').value);
        const discount = Number(value('operator-discount').value || 0);
        if (!value('operator-base-price').value || !Number.isFinite(base) || base <= 0) throw new Error('Enter a base price above 0');
        if (!Number.isInteger(discount) || discount < 0 || discount > 100) throw new Error('Enter a discount from 0 to 100 %');
        const tiers = parseTiers(value('operator-tiers').value);
        return { base_price: base, discount_percent: discount, ...(tiers === null ? {} : { tiers }) };
      },
      send: (price) => pricingApi.putPrice(current, price),
      done: (price) => `${price.sku}: ${money(price.final_price, price.currency)} now.`,
    });
  });

  select.addEventListener('change', () => {
    fill(stockResult);
    fill(priceResult);
    renderFacts();
    prefillPrice();
    loadHistory();
  });

  function show() {
    const visible = isOperator();
    const was = !root.hidden;
    root.hidden = !visible;
    if (navLink) navLink.hidden = !visible;
    stockForm.hidden = !session.has('inventory:write');
    priceForm.hidden = !session.has('pricing:write');
    if (!visible) {
      // Nothing of one account's view stays for the next.
      historyGeneration += 1;
      fill(historyList);
      fill(historyStatus);
      fill(stockResult);
      fill(priceResult);
      return;
    }
    if (!was) {
      renderOptions();
      renderFacts();
      prefillPrice();
      loadHistory();
    }
  }

  catalogue.subscribe(() => {
    renderOptions();
    renderFacts();
    if (!value('operator-base-price').value) prefillPrice();
  });
  session.subscribe(show);
  show();
}
