/**
 * The seed's demo, step by step (list the items, get item A001, get the price of
 * A001, place an order for customer "demo" with A001 and B001), and buttons for
 * the seed's everyday commands with their answers.
 *
 * The read-only steps run when the page loads. Placing the order changes stock,
 * so it waits for "Run demo", unless the page was opened with ?demo=1.
 */

import { h, fill, spinner, busy } from './dom.js';
import { inventoryApi, pricingApi, orderApi, healthOf, newIdempotencyKey } from './api.js';
import { renderProblem } from './problem.js';
import { session } from './session.js';
import { money, percentOff, shortId, stockText, plural, titleCase } from './format.js';

const DEMO_CUSTOMER = 'demo';

/** Who an order is for: signed in, the account (a service with auth on refuses any other). */
function orderer(fallback) {
  return session.signedIn ? session.sub : fallback;
}
const DEMO_SKUS = ['A001', 'B001'];

function describeOrder(order) {
  const total = order.total === null || order.total === undefined
    ? 'total to be confirmed'
    : `total ${money(order.total, order.currency || 'USD')}`;
  const pricing = order.pricing ? `, ${order.pricing} prices` : '';
  return `Order ${shortId(order.order_id)}: ${order.status.replace('_', ' ')}, ${total}${pricing}`;
}

function describePrice(price) {
  const final = money(price.final_price, price.currency);
  return price.discounted
    ? `${final} (${percentOff(price.discount_percent)} off ${money(price.base_price, price.currency)})`
    : final;
}

const STEPS = [
  {
    id: 'list-items',
    title: 'List the items',
    command: 'GET /items',
    service: 'inventory',
    run: async () => {
      const result = await inventoryApi.listItems();
      return { result, summary: `${plural(result.data.count, 'item')} in the catalogue` };
    },
  },
  {
    id: 'get-item',
    title: 'Get item A001',
    command: 'GET /items/A001',
    service: 'inventory',
    run: async () => {
      const result = await inventoryApi.getItem('A001');
      return { result, summary: `${result.data.name}: ${stockText(result.data.stock).toLowerCase()}` };
    },
  },
  {
    id: 'get-price',
    title: 'Get the price of A001',
    command: 'GET /price/A001',
    service: 'pricing',
    run: async () => {
      const result = await pricingApi.getPrice('A001');
      return { result, summary: describePrice(result.data) };
    },
  },
  {
    id: 'place-order',
    title: 'Order A001 + B001 for "demo"',
    command: 'POST /orders',
    service: 'order',
    changesData: true,
    run: async () => {
      const result = await orderApi.placeOrder({ customer_id: orderer(DEMO_CUSTOMER), skus: DEMO_SKUS }, newIdempotencyKey());
      return { result, summary: describeOrder(result.data), order: result.data };
    },
  },
];

const STATE_WORDS = {
  waiting: 'Not run yet',
  optin: 'Press “Run demo” to place this order',
  running: 'Running…',
  done: 'Done',
  failed: 'Failed',
  skipped: 'Skipped',
};

/**
 * Mounts the demo in `root` (the section). `onOrderPlaced(order)` as in the cart.
 * Returns `{ runOnLoad }`.
 */
export function mountDemo(root, { onOrderPlaced, autoOrder }) {
  const list = root.querySelector('[data-role="steps"]');
  const status = root.querySelector('[data-role="status"]');
  const runButton = root.querySelector('[data-role="run"]');
  const views = new Map();

  for (const [index, step] of STEPS.entries()) {
    const state = h('span', { class: 'step-state', 'data-role': 'state' });
    const outcome = h('div', { class: 'step-outcome', 'data-role': 'outcome' });
    const li = h('li', { class: 'step', 'data-testid': `demo-step-${step.id}`, 'data-state': 'waiting' },
      h('p', { class: 'step-title' },
        h('span', { class: 'step-number', 'aria-hidden': 'true' }, String(index + 1)),
        h('strong', {}, step.title)),
      h('p', { class: 'step-command' }, h('code', {}, `${step.command}`), h('span', { class: 'quiet' }, ` · ${step.service}`)),
      state,
      outcome);
    views.set(step.id, { li, state, outcome });
    list.append(li);
  }

  function show(step, stateName, ...content) {
    const view = views.get(step.id);
    view.li.dataset.state = stateName;
    fill(view.state, stateName === 'running' ? [spinner('Running…'), ' Running…'] : STATE_WORDS[stateName]);
    fill(view.outcome, ...content);
    if (stateName === 'running') view.li.setAttribute('aria-busy', 'true');
    else view.li.removeAttribute('aria-busy');
  }

  /** Runs the steps in order; `includeOrder` false stops before the order. */
  async function run(includeOrder) {
    runButton.disabled = true;
    root.dataset.demo = 'running';
    fill(status, includeOrder ? 'Running the demo…' : 'Running the read-only steps…');
    let failed = 0;
    for (const step of STEPS) {
      if (step.changesData && !includeOrder) {
        show(step, 'optin');
        continue;
      }
      show(step, 'running');
      try {
        const { result, summary, order } = await step.run();
        show(step, 'done',
          h('p', { 'data-testid': 'step-summary' }, summary),
          h('p', { class: 'quiet small' }, `HTTP ${result.status} in ${result.latencyMs} ms · request id `,
            h('code', {}, result.requestId || 'none')));
        if (order && onOrderPlaced) onOrderPlaced(order);
      } catch (error) {
        failed += 1;
        show(step, 'failed', renderProblem(error));
      }
    }
    const done = includeOrder ? 'complete' : 'read-only-complete';
    root.dataset.demo = failed ? 'failed' : done;
    fill(status, failed
      ? `${plural(failed, 'step')} failed: see why below.`
      : includeOrder ? 'Demo complete: every step succeeded.' : 'Read-only steps done. Press “Run demo” to also place the order.');
    runButton.disabled = false;
  }

  runButton.addEventListener('click', () => run(true));
  return { runOnLoad: () => run(autoOrder) };
}

/** The seed's everyday commands as buttons, and what they answered. */
const OPERATIONS = [
  { id: 'list-items', label: 'List items', command: 'GET /items', run: () => inventoryApi.listItems(), summary: (d) => `${plural(d.count, 'item')}: ${d.items.map((i) => i.sku).join(', ')}` },
  { id: 'get-item', label: 'Get item', command: 'GET /items/{sku}', needsSku: true, run: (sku) => inventoryApi.getItem(sku), summary: (d) => `${d.name} (${d.category}): ${stockText(d.stock).toLowerCase()}` },
  { id: 'get-price', label: 'Get price', command: 'GET /price/{sku}', needsSku: true, run: (sku) => pricingApi.getPrice(sku), summary: (d) => `${d.sku}: ${describePrice(d)}` },
  { id: 'seed-order', label: 'Order A001 + B001 for "test"', command: 'POST /orders', run: () => orderApi.placeOrder({ customer_id: orderer('test'), skus: DEMO_SKUS }, newIdempotencyKey()), summary: describeOrder, placesOrder: true },
  ...['inventory', 'pricing', 'order'].map((service) => ({
    id: `health-${service}`,
    label: `${titleCase(service)} health`,
    command: 'GET /health',
    run: () => healthOf[service](),
    summary: (d) => `${d.service} ${d.version}: ${d.status}${d.checks ? ` (${Object.entries(d.checks).map(([k, v]) => `${k} ${v.status}`).join(', ')})` : ''}`,
  })),
];

/** Mounts the operations console in `root` (the section). */
export function mountConsole(root, { onOrderPlaced }) {
  const buttons = root.querySelector('[data-role="buttons"]');
  const output = root.querySelector('[data-role="output"]');
  const skuInput = root.querySelector('#ops-sku');

  async function perform(op) {
    const sku = skuInput.value.trim().toUpperCase() || 'A001';
    const command = op.needsSku ? op.command.replace('{sku}', sku) : op.command;
    fill(output, h('p', {}, spinner(), ` ${command}…`));
    try {
      const result = await busy(output, () => op.run(sku));
      fill(output,
        h('p', { class: 'ops-headline', 'data-testid': 'ops-headline' },
          h('code', {}, command), ` answered ${result.status} in ${result.latencyMs} ms`),
        h('p', { 'data-testid': 'ops-summary' }, op.summary(result.data)),
        h('p', { class: 'quiet small' }, 'Request id ', h('code', {}, result.requestId || 'none')),
        h('details', {}, h('summary', {}, 'Response body'), h('pre', {}, JSON.stringify(result.data, null, 2))));
      if (op.placesOrder && onOrderPlaced) onOrderPlaced(result.data);
    } catch (error) {
      fill(output, h('p', { class: 'ops-headline' }, h('code', {}, command)), renderProblem(error));
    }
  }

  for (const op of OPERATIONS) {
    buttons.append(h('button', {
      type: 'button',
      class: 'button button-secondary',
      'data-testid': `op-${op.id}`,
      onclick: () => perform(op),
    }, op.label));
  }
}
