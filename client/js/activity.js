/**
 * The activity feed: the shop's events as they happen, one line each, newest
 * first, the last FEED_SIZE. They come from the order service's
 * `GET /events/stream` (Server-Sent Events: `event:` the CloudEvent type, `id:`
 * its id, `data:` the CloudEvent JSON), through the gateway as
 * `/order/events/stream`, opened with an EventSource.
 *
 * The badge says how the stream is: "Connecting…", "Live", "Reconnecting…", or
 * "Off" when the order service answers 503 `events_off` (events need NATS_URL).
 * An EventSource cannot read a refused answer, so when the browser gives up on
 * one the page asks once with fetch to learn why, then tries again later.
 *
 * Event data is untrusted: it is read defensively (a malformed event reads as
 * "An event …", never an exception) and only ever inserted as text. An event
 * delivered twice (the contract allows it) shows once. The list is a polite live
 * region and nothing here moves the focus.
 */

import { config } from '../config.js';
import { fill, h } from './dom.js';
import { clock, money, plural, shortId } from './format.js';

/** Lines kept on screen. */
export const FEED_SIZE = 50;

/** The event types the feed knows (an EventSource only delivers the types it listens to). */
export const EVENT_TYPES = [
  'shop.order.confirmed',
  'shop.order.pending_pricing',
  'shop.order.rejected',
  'shop.order.failed',
  'shop.order.cancelled',
  'shop.inventory.stock_changed',
  'shop.inventory.reservation_expired',
  'shop.pricing.price_changed',
];

const STATUS_WORDS = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  off: 'Off',
};

/** How long to wait before asking again: after a failure (doubling), and while events are off. */
const RETRY_MS = 3000;
const MAX_RETRY_MS = 30_000;
const OFF_RETRY_MS = 60_000;
const PROBE_TIMEOUT_MS = 5000;
/** Longest piece of event text shown; the rest is cut. */
const MAX_TEXT = 80;

const ORDER_WORDS = {
  confirmed: 'confirmed',
  pending_pricing: 'waiting for a price',
  rejected: 'refused',
  failed: 'failed',
  cancelled: 'cancelled',
};

/** A short, single-line string from an untrusted value ('' when it is not text or a number). */
function text(value) {
  if (typeof value !== 'string' && typeof value !== 'number') return '';
  const s = String(value).replace(/\s+/g, ' ').trim();
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT - 1)}…` : s;
}

/** A finite number from an untrusted value, else null. */
function number(value) {
  if (value === null || value === undefined || value === '' || typeof value === 'boolean') return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

function amount(value, currency) {
  const n = number(value);
  if (n === null) return '?';
  return currency ? money(n, currency) : n.toFixed(2);
}

function units(lines) {
  if (!Array.isArray(lines)) return null;
  return lines.reduce((sum, line) => sum + (number(line && line.quantity) ?? 0), 0);
}

function describeOrder(status, data) {
  const id = text(data.order_id);
  const head = `Order ${id ? shortId(id) : '?'} ${ORDER_WORDS[status]}`;
  const parts = [];
  const count = units(data.lines);
  if (count !== null) parts.push(plural(count, 'item'));
  const currency = /^[A-Z]{3}$/.test(data.currency) ? data.currency : null;
  if (number(data.total) !== null) parts.push(amount(data.total, currency));
  const reason = text(data.reason);
  if (reason) parts.push(reason);
  return parts.length ? `${head}: ${parts.join(', ')}` : head;
}

/** "restock", "reservation_expired" or a signed number, as words in brackets. */
function changeNote(change) {
  const n = number(change);
  if (typeof change === 'number' && n !== null) return ` (${n > 0 ? '+' : '−'}${Math.abs(n)})`;
  const word = text(change).replace(/_/g, ' ');
  return word ? ` (${word})` : '';
}

function describeStock(data) {
  const before = number(data.previous_stock);
  const after = number(data.stock);
  const what = `Stock of ${text(data.sku) || '?'}`;
  const note = changeNote(data.change);
  if (after === null) return `${what} changed${note}`;
  return `${what} changed ${before ?? '?'} → ${after}${note}`;
}

function describeExpiry(data) {
  const lines = Array.isArray(data.lines) ? data.lines : [];
  const what = lines.slice(0, 3).map((line) => `${number(line && line.quantity) ?? '?'} × ${text(line && line.sku) || '?'}`);
  if (lines.length > 3) what.push(`${lines.length - 3} more`);
  const id = text(data.reservation_id);
  return `Reservation ${id ? shortId(id) : '?'} expired${what.length ? `: ${what.join(', ')} back in stock` : ''}`;
}

function describePrice(data) {
  const currency = /^[A-Z]{3}$/.test(data.currency) ? data.currency : null;
  const what = `Price of ${text(data.sku) || '?'}`;
  if (number(data.previous_price) === null) return `${what} set to ${amount(data.price, currency)}`;
  return `${what} changed ${amount(data.previous_price, currency)} → ${amount(data.price, currency)}`;
}

/** One CloudEvent (parsed, untrusted) as one line of words. Never throws. */
export function describeEvent(event) {
  const type = event && typeof event.type === 'string' ? event.type : '';
  const data = event && event.data && typeof event.data === 'object' ? event.data : {};
  const [, service, name] = /^shop\.(order|inventory|pricing)\.([a-z_]+)$/.exec(type) || [];
  if (service === 'order' && ORDER_WORDS[name]) return describeOrder(name, data);
  if (type === 'shop.inventory.stock_changed') return describeStock(data);
  if (type === 'shop.inventory.reservation_expired') return describeExpiry(data);
  if (type === 'shop.pricing.price_changed') return describePrice(data);
  return `An event${type ? ` ${text(type)}` : ''}${text(event && event.subject) ? ` about ${text(event.subject)}` : ''}`;
}

/**
 * The entry for an SSE message (`type` the `event:` field, `raw` the `data:`
 * text, `lastEventId` the `id:` field), or null when the data is not a JSON object.
 */
export function entryFrom({ type, raw, lastEventId }, now = new Date()) {
  let event;
  try {
    event = JSON.parse(raw);
  } catch {
    return null;
  }
  if (!event || typeof event !== 'object' || Array.isArray(event)) return null;
  const at = new Date(typeof event.time === 'string' ? event.time : NaN);
  return {
    id: text(event.id) || text(lastEventId),
    type: text(event.type) || text(type),
    at: Number.isNaN(at.getTime()) ? now : at,
    words: describeEvent({ ...event, type: typeof event.type === 'string' ? event.type : type }),
  };
}

/** `entries` with `entry` in front, unless its id is there already; at most `max`. */
export function remember(entries, entry, max = FEED_SIZE) {
  if (entry.id && entries.some((e) => e.id === entry.id)) return entries;
  return [entry, ...entries].slice(0, max);
}

/** One line of the list; every piece of event text goes in as text. */
export function renderEntry(entry) {
  return h('li', { class: 'activity-entry', 'data-testid': 'activity-entry', 'data-type': entry.type },
    h('time', { datetime: entry.at.toISOString(), class: 'quiet' }, clock(entry.at)),
    ' ',
    h('span', { class: 'activity-words' }, entry.words));
}

/**
 * What a refused stream answer stands for: `{ off: true }` for 503 events_off,
 * `{ open: true }` when the stream answers after all, else `{ problem }`.
 */
async function probe(url) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
  try {
    const response = await fetch(url, { headers: { Accept: 'text/event-stream' }, signal: controller.signal });
    if (response.ok) return { open: true };
    const type = response.headers.get('content-type') || '';
    const body = type.includes('json') ? await response.json().catch(() => null) : null;
    if (response.status === 503 && body && body.code === 'events_off') return { off: true };
    return { problem: `${response.status} ${text(body && body.title) || response.statusText}`.trim() };
  } catch {
    return { problem: 'the order service did not answer' };
  } finally {
    // Also ends an open stream's body: the EventSource listens, not this.
    controller.abort();
    clearTimeout(timer);
  }
}

/** Mounts the feed in `root` (its section) and connects. Returns `{ close }`. */
export function mountActivity(root) {
  const badge = root.querySelector('[data-role="status"]');
  const note = root.querySelector('[data-role="note"]');
  const list = root.querySelector('[data-role="list"]');
  const empty = root.querySelector('[data-role="empty"]');
  const url = `${config.services.order}/events/stream`;
  let entries = [];
  let source = null;
  let timer = null;
  let failures = 0;

  function setStatus(state, words = '') {
    root.dataset.status = state;
    badge.className = `pill pill-feed-${state}`;
    fill(badge, STATUS_WORDS[state]);
    fill(note, words);
  }

  function onEvent(message) {
    const entry = entryFrom({ type: message.type, raw: message.data, lastEventId: message.lastEventId });
    if (!entry) return;
    const next = remember(entries, entry);
    if (next === entries) return;
    entries = next;
    list.prepend(renderEntry(entry));
    while (list.children.length > FEED_SIZE) list.lastElementChild.remove();
    empty.hidden = true;
  }

  function retry(ms) {
    clearTimeout(timer);
    timer = setTimeout(connect, ms);
  }

  async function diagnose() {
    const why = await probe(url);
    if (why.off) {
      setStatus('off', 'Events are off on the order service (it runs without NATS_URL).');
      retry(OFF_RETRY_MS);
      return;
    }
    failures += 1;
    const wait = Math.min(RETRY_MS * 2 ** (failures - 1), MAX_RETRY_MS);
    if (why.open) {
      // It answers now: at once the first time, then no faster than after a failure.
      setStatus('reconnecting', 'Reconnecting…');
      retry(failures === 1 ? 0 : wait);
    } else {
      setStatus('reconnecting', `The feed is unavailable (${why.problem}); trying again in ${Math.round(wait / 1000)} s.`);
      retry(wait);
    }
  }

  function connect() {
    if (typeof EventSource === 'undefined') {
      setStatus('off', 'This browser cannot follow a live feed.');
      return;
    }
    const current = new EventSource(url);
    source = current;
    current.addEventListener('open', () => {
      failures = 0;
      setStatus('live');
    });
    for (const type of EVENT_TYPES) current.addEventListener(type, onEvent);
    current.addEventListener('error', () => {
      if (source !== current) return;
      if (current.readyState === EventSource.CONNECTING) {
        // The browser reconnects by itself (after the stream's `retry:`).
        setStatus('reconnecting', 'The connection dropped; reconnecting…');
        return;
      }
      // CLOSED: the answer was no event stream (events off, refused, a gateway error).
      current.close();
      source = null;
      diagnose();
    });
  }

  function close() {
    clearTimeout(timer);
    if (source) source.close();
    source = null;
  }

  setStatus('connecting');
  window.addEventListener('pagehide', close);
  // A page restored from the back/forward cache follows the feed again.
  window.addEventListener('pageshow', (event) => {
    if (event.persisted && !source) connect();
  });
  connect();
  return { close };
}
