/**
 * Starts the page: picks up this tab's session, mounts each part on its section
 * of index.html and wires them together (an order or a cancellation reloads the
 * catalogue and the history; a refused attempt the history, where it shows apart
 * from the orders; signing in or out the history; an operator's change the
 * catalogue), and opens the live activity feed.
 */

import { config } from '../config.js';
import { settleConnection } from './connection.js';
import { byId, fill, h } from './dom.js';
import { mountCatalogue } from './catalogue.js';
import { mountCart } from './cart-view.js';
import { mountHistory, orderCard } from './orders.js';
import { mountPanel } from './panel.js';
import { mountFaults } from './faults.js';
import { mountDemo, mountConsole } from './demo.js';
import { customer } from './state.js';
import { session } from './session.js';
import { mountAccount } from './account.js';
import { mountOperator } from './operator.js';
import { mountActivity } from './activity.js';

const SOURCE_NOTES = {
  override: ' (configured)',
  fallback: ' (no gateway answered on this site)',
};

function describeConnection() {
  const how = config.mode === 'gateway'
    ? 'through the gateway on this site'
    : 'directly on their own ports';
  return h('span', {},
    `Services reached ${how}${SOURCE_NOTES[config.source] || ''}: `,
    Object.entries(config.services).map(([name, base], i) => [i ? ', ' : '', `${name} `, h('code', {}, base)]));
}

export async function start() {
  // index.html loads either these modules or shop.bundle.js (built from them); should a
  // page ever load both, the first to run starts it and the other does nothing.
  if (window.shopStarted) return;
  window.shopStarted = true;

  // Before the first call, so a reload keeps the session it had.
  session.restore();

  // Everything reads the one shared config object, so settle it in place.
  Object.assign(config, await settleConnection(config, window.location));
  fill(byId('connection'), describeConnection());

  let catalogue;
  let history;
  let panel;

  function onCancelled(order) {
    // The same order may show twice (checkout result and history): update both.
    for (const card of document.querySelectorAll(`[data-order-id="${CSS.escape(order.order_id)}"]`)) {
      if (card.dataset.status !== order.status) card.replaceWith(orderCard(order, { onCancelled }));
    }
    catalogue.reload();
    panel.refresh();
  }

  function onOrderPlaced() {
    catalogue.reload();
    history.reload();
    panel.refresh();
  }

  mountAccount(byId('account'), byId('account-panel'));
  catalogue = mountCatalogue(byId('shop'));
  mountOperator(byId('operator'), { onChanged: () => catalogue.reload() });
  mountCart(byId('cart'), { onOrderPlaced, onOrderRefused: () => history.reload(), onCancelled });
  history = mountHistory(byId('orders'), { onCancelled });
  panel = mountPanel(byId('resilience'), { pollMs: config.healthPollMs });
  mountFaults(document.querySelector('#resilience [data-role="faults"]'), { onChanged: () => panel.refresh() });
  const demo = mountDemo(byId('demo'), { onOrderPlaced, autoOrder: config.autoDemo });
  mountConsole(byId('console'), { onOrderPlaced });
  mountActivity(byId('activity'));

  customer.subscribe(() => history.reload());
  catalogue.reload();
  history.reload();
  demo.runOnLoad();
  document.body.dataset.ready = 'true';
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
