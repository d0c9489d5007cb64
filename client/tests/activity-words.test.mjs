// The activity feed's words for each event type, and how it copes with hostile or
// malformed events and duplicates, checked without a browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FEED_SIZE, MAX_RETRY_MS, RETRY_MS, backoff, describeEvent, entryFrom, remember, streamHeaders } from '../js/activity.js';

const ORDER_ID = '01890a5d-ac96-774b-bcce-b302099a8057';

test('order events read as the order, what it holds and what it cost', () => {
  const data = {
    order_id: ORDER_ID,
    customer_id: 'c-1',
    status: 'confirmed',
    lines: [{ sku: 'A001', quantity: 1 }, { sku: 'A002', quantity: 1 }],
    total: '1799.98',
    currency: 'EUR',
    pricing_source: 'live',
  };
  assert.equal(describeEvent({ type: 'shop.order.confirmed', data }), 'Order 099a8057 confirmed: 2 items, €1,799.98');
  assert.equal(describeEvent({ type: 'shop.order.pending_pricing', data: { ...data, total: null } }),
    'Order 099a8057 waiting for a price: 2 items');
  assert.equal(describeEvent({ type: 'shop.order.rejected', data: { ...data, total: null, reason: 'insufficient_stock' } }),
    'Order 099a8057 refused: 2 items, insufficient_stock');
  assert.equal(describeEvent({ type: 'shop.order.cancelled', data: { ...data, lines: [{ sku: 'A001', quantity: 3 }] } }),
    'Order 099a8057 cancelled: 3 items, €1,799.98');
  assert.equal(describeEvent({ type: 'shop.order.failed', data: {} }), 'Order ? failed');
});

test('stock, reservation and price events read as what changed', () => {
  assert.equal(describeEvent({
    type: 'shop.inventory.stock_changed',
    data: { sku: 'SKU-1', name: 'Laptop', category: 'electronics', stock: 25, previous_stock: 5, change: 'restock', actor: 'anonymous' },
  }), 'Stock of SKU-1 changed 5 → 25 (restock)');
  assert.equal(describeEvent({ type: 'shop.inventory.stock_changed', data: { sku: 'A1', stock: 2, previous_stock: 3, change: -1 } }),
    'Stock of A1 changed 3 → 2 (−1)');
  assert.equal(describeEvent({ type: 'shop.inventory.stock_changed', data: { sku: 'A1', stock: 4, change: 'reservation_released' } }),
    'Stock of A1 changed ? → 4 (reservation released)');
  assert.equal(describeEvent({ type: 'shop.inventory.stock_changed', data: { sku: 'A1', stock: 4, previous_stock: 5, change: 'stock', movement: 'reserved' } }),
    'Stock of A1 changed 5 → 4 (reserved)');
  assert.equal(describeEvent({
    type: 'shop.inventory.reservation_expired',
    data: { reservation_id: ORDER_ID, lines: [{ sku: 'A001', quantity: 2 }], expired_at: '2025-01-01T00:00:00Z' },
  }), 'Reservation 099a8057 expired: 2 × A001 back in stock');
  // Its public form, as a listener without a token gets it: no reservation id.
  assert.equal(describeEvent({
    type: 'shop.inventory.reservation_expired',
    data: { lines: [{ sku: 'A001', quantity: 1 }] },
  }), 'A reservation expired: 1 × A001 back in stock');
  assert.equal(describeEvent({
    type: 'shop.pricing.price_changed',
    data: { sku: 'SKU-1', price: '849.99', currency: 'USD', previous_price: '899.99', actor: 'op' },
  }), 'Price of SKU-1 changed $899.99 → $849.99');
  assert.equal(describeEvent({ type: 'shop.pricing.price_changed', data: { sku: 'N1', price: 5, currency: 'USD', previous_price: null } }),
    'Price of N1 set to $5.00');
});

test('unknown, malformed and hostile events read as words and never throw', () => {
  assert.equal(describeEvent({ type: 'shop.order.teleported', subject: 'o-1', data: {} }), 'An event shop.order.teleported about o-1');
  assert.equal(describeEvent(null), 'An event');
  assert.equal(describeEvent({ type: 'shop.inventory.stock_changed', data: 'not an object' }), 'Stock of ? changed');
  assert.equal(describeEvent({ type: 'shop.pricing.price_changed', data: { sku: { toString: 1 }, price: 'NaN', currency: '<b>' } }),
    'Price of ? set to ?');
  const hostile = describeEvent({ type: 'shop.inventory.stock_changed', data: { sku: '<img src=x onerror=alert(1)>', stock: 1, previous_stock: 0, change: 'x'.repeat(500) } });
  // The markup stays text (the page inserts it as text), and a huge value is cut short.
  assert.match(hostile, /^Stock of <img src=x onerror=alert\(1\)> changed 0 → 1 \(x+…\)$/);
  assert.ok(hostile.length < 200);
});

test('an SSE message becomes an entry with the event time; non-JSON data is dropped', () => {
  const raw = JSON.stringify({
    specversion: '1.0', id: 'e-1', source: '/pricing', type: 'shop.pricing.price_changed', subject: 'A001',
    time: '2025-03-04T05:06:07Z', data: { sku: 'A001', price: 10, currency: 'USD', previous_price: 12 },
  });
  const entry = entryFrom({ type: 'shop.pricing.price_changed', raw, lastEventId: 'e-1' });
  assert.equal(entry.id, 'e-1');
  assert.equal(entry.at.toISOString(), '2025-03-04T05:06:07.000Z');
  assert.equal(entry.words, 'Price of A001 changed $12.00 → $10.00');
  for (const bad of ['', 'not json', '[]', 'null', '"text"']) {
    assert.equal(entryFrom({ type: 'x', raw: bad, lastEventId: '' }), null, bad);
  }
  const now = new Date('2025-01-01T00:00:00Z');
  const untimed = entryFrom({ type: 'shop.order.failed', raw: '{"time":"yesterday"}', lastEventId: 'e-9' }, now);
  assert.deepEqual([untimed.id, untimed.type, untimed.at, untimed.words], ['e-9', 'shop.order.failed', now, 'Order ? failed']);
});

test('the feed keeps the newest entries, at most FEED_SIZE, and an event delivered twice once', () => {
  let entries = [];
  for (let n = 1; n <= FEED_SIZE + 5; n += 1) entries = remember(entries, { id: `e-${n}`, words: String(n) });
  assert.equal(entries.length, FEED_SIZE);
  assert.equal(entries[0].id, `e-${FEED_SIZE + 5}`);
  assert.equal(entries.at(-1).id, 'e-6');
  const again = remember(entries, { id: `e-${FEED_SIZE}`, words: 'duplicate' });
  assert.equal(again, entries);
});

test('the stream asks again after 3 s doubling to 30 s, or after the stream\'s retry: doubling', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => backoff(n)), [3000, 6000, 12_000, 24_000, 30_000, 30_000]);
  assert.equal(RETRY_MS, 3000);
  assert.equal(MAX_RETRY_MS, 30_000);
  assert.deepEqual([1, 2, 3].map((n) => backoff(n, 5000)), [5000, 10_000, 20_000]);
  // A hostile or silly retry: neither hammers the service nor waits for ever.
  assert.deepEqual([backoff(1, 0), backoff(2, 0), backoff(1, 10 ** 9), backoff(1, NaN)], [1000, 2000, 30_000, 3000]);
});

test('the stream request carries the token only when signed in, and the last event id only when known', () => {
  assert.deepEqual(streamHeaders(null, ''), { Accept: 'text/event-stream' });
  assert.deepEqual(streamHeaders('t.o.k', 'e-1'), { Accept: 'text/event-stream', Authorization: 'Bearer t.o.k', 'Last-Event-ID': 'e-1' });
});
