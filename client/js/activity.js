/**
 * The activity feed: the shop's events as they happen, one line each, newest
 * first, the last FEED_SIZE. They come from the order service's
 * `GET /events/stream` (Server-Sent Events: `event:` the CloudEvent type, `id:`
 * its id, `data:` the CloudEvent JSON), through the gateway as
 * `/order/events/stream`, read with fetch and the parser in sse.js (not an
 * EventSource: it cannot send a token).
 *
 * Signed in, the request carries `Authorization: Bearer <token>` (the service shows
 * each listener what it may see: the catalogue's events to anyone, a customer's own
 * orders to that customer, everything to `orders:admin`); signing in or out opens
 * the stream again as the new identity, and a sign-out clears the lines. A 401 to
 * the token ends the session as any call's does (api.js), and the feed says why.
 * It sends `Last-Event-ID` once it knows one.
 *
 * A stream opened with a token ends when the token expires (the service closes it).
 * A stream the service ends after it was live a while is opened again at once, as
 * whoever is signed in now (a token about to expire ends the session first, as at
 * `exp`), with `Last-Event-ID`: the service sends the events missed in between, and
 * the badge stays "Live". Signing in or out while live keeps the badge too.
 *
 * The badge says how the stream is: "Connecting…", "Live", "Reconnecting…" (asking
 * again after 3 s, or the stream's `retry:`, doubling up to 30 s), or "Off" when the
 * order service has no stream (404 `not_found`: events need NATS_URL; older services
 * answered 503 `events_off`; asked again every minute). The token is never written
 * anywhere but the request's header.
 *
 * Event data is untrusted: it is read defensively (a malformed event reads as
 * "An event …", never an exception) and only ever inserted as text. An event
 * delivered twice (the contract allows it) shows once. The list is a polite live
 * region and nothing here moves the focus.
 */

import { config } from '../config.js';
import { fill, h } from './dom.js';
import { clock, money, plural, shortId } from './format.js';
import { endRefusedSession, problemOfAnswer } from './api.js';
import { session } from './session.js';
import { createSseParser } from './sse.js';

/** Lines kept on screen. */
export const FEED_SIZE = 50;

/** The event types the feed shows; others (a type added later, a bare `message`) are skipped. */
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

/**
 * How long to wait before asking again: after a failure or a dropped stream (the
 * stream's `retry:`, else RETRY_MS, doubling, kept between MIN_RETRY_MS and
 * MAX_RETRY_MS), and while events are off. An answer's headers take at most
 * CONNECT_TIMEOUT_MS; the stream itself may then stay open as long as it likes.
 */
export const RETRY_MS = 3000;
const MIN_RETRY_MS = 1000;
export const MAX_RETRY_MS = 30_000;
const OFF_RETRY_MS = 60_000;
const CONNECT_TIMEOUT_MS = 10_000;
/** A token this close to its `exp` is not sent to reopen the stream. */
const EXPIRY_MARGIN_MS = 5_000;
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
  // `movement` (reserved, confirmed, released, …) says more than the older `change`.
  const note = changeNote(data.movement ?? data.change);
  if (after === null) return `${what} changed${note}`;
  return `${what} changed ${before ?? '?'} → ${after}${note}`;
}

function describeExpiry(data) {
  const lines = Array.isArray(data.lines) ? data.lines : [];
  const what = lines.slice(0, 3).map((line) => `${number(line && line.quantity) ?? '?'} × ${text(line && line.sku) || '?'}`);
  if (lines.length > 3) what.push(`${lines.length - 3} more`);
  // A listener without a token is not told which reservation (nor whose).
  const id = text(data.reservation_id);
  return `${id ? `Reservation ${shortId(id)}` : 'A reservation'} expired${what.length ? `: ${what.join(', ')} back in stock` : ''}`;
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

/** The stream request's headers: the token when signed in, the last event id when known. */
export function streamHeaders(token, lastEventId) {
  return {
    Accept: 'text/event-stream',
    ...(token ? { Authorization: `Bearer ${token}` } : {}),
    ...(lastEventId ? { 'Last-Event-ID': lastEventId } : {}),
  };
}

/**
 * How long to wait before asking again after the `failures`th failure in a row:
 * `base` (the stream's `retry:`, else RETRY_MS) doubling, at most MAX_RETRY_MS.
 */
export function backoff(failures, base = RETRY_MS) {
  const first = Math.min(Math.max(Number.isFinite(base) ? base : RETRY_MS, MIN_RETRY_MS), MAX_RETRY_MS);
  return Math.min(first * 2 ** Math.max(failures - 1, 0), MAX_RETRY_MS);
}

function isEventStream(response) {
  return (response.headers.get('content-type') || '').toLowerCase().startsWith('text/event-stream');
}

function canStream() {
  return typeof fetch === 'function' && typeof AbortController === 'function' && typeof TextDecoder === 'function'
    && typeof ReadableStream === 'function';
}

/**
 * Mounts the feed in `root` (its section) and connects, as the signed-in user when
 * there is one; signing in or out reopens it as the new identity. Returns `{ close }`.
 */
export function mountActivity(root) {
  const badge = root.querySelector('[data-role="status"]');
  const note = root.querySelector('[data-role="note"]');
  const list = root.querySelector('[data-role="list"]');
  const empty = root.querySelector('[data-role="empty"]');
  const url = `${config.services.order}/events/stream`;
  let entries = [];
  let stream = null; // the AbortController of the request being opened or read
  let timer = null;
  let closed = false;
  let failures = 0;
  let base = RETRY_MS;
  let lastEventId = '';
  let openedAs = { token: null, sub: '' }; // who the stream was last opened as
  let notice = ''; // why the feed follows signed out after a refused sign-in

  function setStatus(state, words = '') {
    root.dataset.status = state;
    badge.className = `pill pill-feed-${state}`;
    fill(badge, STATUS_WORDS[state]);
    fill(note, words);
  }

  function onEvent(message) {
    if (!EVENT_TYPES.includes(message.type)) return;
    const entry = entryFrom({ type: message.type, raw: message.data, lastEventId: message.lastEventId });
    if (!entry) return;
    const next = remember(entries, entry);
    if (next === entries) return;
    entries = next;
    list.prepend(renderEntry(entry));
    while (list.children.length > FEED_SIZE) list.lastElementChild.remove();
    empty.hidden = true;
  }

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(connect, ms);
  }

  /** Asks again after the backoff; `why(seconds)` says what happened. */
  function failed(why) {
    stream = null;
    failures += 1;
    const wait = backoff(failures, base);
    setStatus('reconnecting', why(Math.round(wait / 1000)));
    schedule(wait);
  }

  async function refused(response, token, controller) {
    const problem = await problemOfAnswer('order', response);
    if (stream !== controller) return;
    // Events off: the route does not exist (404 `not_found`); older order
    // services answered 503 `events_off`.
    const off = (response.status === 404 && problem.code === 'not_found')
      || (response.status === 503 && problem.code === 'events_off');
    if (off) {
      stream = null;
      setStatus('off', 'Events are off on the order service (it runs without NATS_URL).');
      schedule(OFF_RETRY_MS);
      return;
    }
    // A last event id the service refuses would be refused on every retry:
    // the next request goes without it.
    if (response.status === 400) lastEventId = '';
    const what = `${response.status} ${text(problem.title)}${problem.detail ? `: ${text(problem.detail)}` : ''}`;
    if (response.status === 401 && token) {
      notice = `The order service refused your sign-in (${what}); the feed shows what anyone may see.`;
      // The session ends, and its listener below reopens the stream signed out.
      if (endRefusedSession(response.status, token)) return;
    }
    failed((s) => `The feed is unavailable (${what}); trying again in ${s} s.`);
  }

  async function follow(response, controller) {
    const parser = createSseParser({ lastEventId });
    const reader = response.body.getReader();
    const since = Date.now();
    let ended = false; // the service ended the stream (rather than the connection failing)
    failures = 0;
    setStatus('live', notice);
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) ended = true;
        if (done || stream !== controller) break;
        const events = parser.push(value);
        lastEventId = parser.lastEventId;
        if (parser.retryMs !== null) base = parser.retryMs;
        for (const message of events) onEvent(message);
      }
    } catch {
      // The connection failed, or the stream was hostile: both are a dropped stream.
    }
    if (stream !== controller) return;
    controller.abort();
    // A stream that ends at once again and again is a fault, not an expiry: back off.
    if (ended && Date.now() - since >= MIN_RETRY_MS) {
      reopen();
      return;
    }
    failed((s) => `The connection dropped; reconnecting in ${s} s.`);
  }

  /**
   * Opens the stream again at once after the service ended it (its token expired, or
   * the service is restarting), keeping the badge as it is. A token that expires
   * within EXPIRY_MARGIN_MS ends the session here, as it would at `exp`: the service's
   * clock may be a little ahead, and a token it calls expired would read as refused.
   */
  function reopen() {
    stream = null;
    const current = session.current;
    // Its listener, onSession, forgets someone's own orders as a sign-out does.
    if (current && current.exp * 1000 - Date.now() < EXPIRY_MARGIN_MS) session.end('expired');
    schedule(0);
  }

  async function connect() {
    // May end an expired session, whose listener asks for this very reopening.
    const token = session.bearer();
    clearTimeout(timer);
    if (stream) stream.abort();
    const controller = new AbortController();
    stream = controller;
    openedAs = { token, sub: session.sub };
    const timeout = setTimeout(() => controller.abort(), CONNECT_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(url, { headers: streamHeaders(token, lastEventId), cache: 'no-store', signal: controller.signal });
    } catch {
      if (stream === controller) failed((s) => `The order service did not answer; trying again in ${s} s.`);
      return;
    } finally {
      clearTimeout(timeout);
    }
    if (stream !== controller) {
      controller.abort();
    } else if (!response.ok) {
      await refused(response, token, controller);
    } else if (!isEventStream(response) || !response.body) {
      controller.abort();
      failed((s) => `The order service answered ${response.status} without an event stream; trying again in ${s} s.`);
    } else {
      await follow(response, controller);
    }
  }

  /** Signing in or out: the stream shows each listener what it may see, so it opens again. */
  function onSession() {
    const token = session.current ? session.current.token : null;
    if (closed || token === openedAs.token) return;
    if (token) notice = '';
    // Someone's own orders may be on the list: they go with that someone.
    if (openedAs.sub && openedAs.sub !== session.sub) {
      entries = [];
      list.replaceChildren();
      empty.hidden = false;
    }
    if (stream) stream.abort();
    stream = null;
    failures = 0;
    // Live, it stays live: the stream opens again at once, with Last-Event-ID.
    if (root.dataset.status === 'live') fill(note, notice);
    else setStatus('connecting', notice);
    schedule(0);
  }

  function close() {
    closed = true;
    clearTimeout(timer);
    if (stream) stream.abort();
    stream = null;
  }

  if (!canStream()) {
    setStatus('off', 'This browser cannot follow a live feed.');
    return { close };
  }
  setStatus('connecting');
  session.subscribe(onSession);
  window.addEventListener('pagehide', close);
  // A page restored from the back/forward cache follows the feed again.
  window.addEventListener('pageshow', (event) => {
    if (!event.persisted || !closed) return;
    closed = false;
    connect();
  });
  connect();
  return { close };
}
