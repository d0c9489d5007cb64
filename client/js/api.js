/**
 * Every call to the services goes through `request`: it builds the URL from the
 * configuration, bounds the call with a timeout, turns any failure into an
 * RFC 9457 problem (`ApiError.problem`: title, detail, status, code, request_id),
 * and records the call in the log the resilience panel shows.
 *
 * Signed in, every call carries `Authorization: Bearer <token>` (identity's own
 * account and sign-in calls excepted), and a 401 to a call that carried it ends
 * the session: it has expired or been refused. The call log keeps method, path,
 * status, latency and request id only: never headers or bodies, so never the
 * token or a password.
 *
 * Below it sit one small object per service (`inventoryApi`, `pricingApi`,
 * `orderApi`, `identityApi`) naming the endpoints the page uses. Reads are tried a second time
 * after a transient failure; writes are not (an order is retried by the person,
 * with the same Idempotency-Key when the outcome was unknown: see cart-view.js).
 */

import { config } from '../config.js';
import { session } from './session.js';

const LOG_SIZE = 20;
const DEFAULT_TIMEOUT_MS = 8000;

const calls = [];
const callListeners = new Set();
let callSeq = 0;

/** A failed call, carrying the problem to show the user. */
export class ApiError extends Error {
  constructor(problem, call) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = 'ApiError';
    this.problem = problem;
    this.call = call;
  }
}

/** Calls `listener(calls)` now and after every call; returns an unsubscribe function. */
export function onCall(listener) {
  callListeners.add(listener);
  listener(calls.slice());
  return () => callListeners.delete(listener);
}

function record(call) {
  calls.unshift(call);
  calls.length = Math.min(calls.length, LOG_SIZE);
  const snapshot = calls.slice();
  for (const listener of callListeners) listener(snapshot);
}

async function readBody(response) {
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  const text = await response.text();
  if (!text) return null;
  if (type.includes('json')) {
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }
  return { text };
}

function retryAfterSeconds(response) {
  const value = response.headers.get('retry-after');
  const n = Number(value);
  return value !== null && Number.isFinite(n) ? n : undefined;
}

/** The problem a non-2xx answer stands for, whether or not it came with one. */
function problemFrom(body, response, service, requestId) {
  const retryAfter = retryAfterSeconds(response);
  if (body && typeof body === 'object' && (body.title || body.detail)) {
    return {
      ...body,
      title: body.title || response.statusText || `HTTP ${response.status}`,
      status: body.status ?? response.status,
      request_id: body.request_id || requestId,
      retry_after: retryAfter,
    };
  }
  // A proxy or a crashed process may answer without a problem body.
  return {
    title: response.statusText || `HTTP ${response.status}`,
    detail: `The ${service} service answered ${response.status} without explaining why.`,
    status: response.status,
    code: `http_${response.status}`,
    request_id: requestId,
    retry_after: retryAfter,
  };
}

function unreachableProblem(service, url, timedOut, timeoutMs) {
  if (timedOut) {
    return {
      title: 'The request timed out',
      detail: `The ${service} service did not answer within ${timeoutMs / 1000} s.`,
      status: 0,
      code: 'timeout',
    };
  }
  return {
    title: `The ${service} service cannot be reached`,
    detail: `No answer from ${url}. It may be stopped or restarting.`,
    status: 0,
    code: 'unreachable',
  };
}

/**
 * Ends the session when a service answered 401 to a call that carried its token:
 * the token is no longer accepted (expired, or the keys changed). A token the
 * session has already replaced is left alone. Returns whether it ended it.
 */
export function endRefusedSession(status, token) {
  if (status !== 401 || !token || session.bearer() !== token) return false;
  session.end('refused');
  return true;
}

/**
 * The problem a refused answer (`response`, not 2xx, its body unread) stands for,
 * from its problem+json body when it has one. Reads the body.
 */
export async function problemOfAnswer(service, response) {
  let body = null;
  try {
    body = await readBody(response);
  } catch {
    body = null;
  }
  return problemFrom(body, response, service, response.headers.get('x-request-id'));
}

/**
 * One call to a service. Resolves to `{ data, status, requestId, latencyMs }` for a
 * 2xx answer and rejects with an `ApiError` otherwise.
 *
 * `log: false` keeps the call out of the call log (the panel's health polls would
 * otherwise push everything else out of it); `auth: false` sends no token.
 */
export async function request(service, method, path, options = {}) {
  const { body, headers = {}, timeoutMs = DEFAULT_TIMEOUT_MS, log = true, auth = true } = options;
  const token = auth ? session.bearer() : null;
  const url = `${config.services[service]}${path}`;
  const call = {
    seq: ++callSeq,
    at: new Date(),
    service,
    method,
    path,
    status: null,
    latencyMs: null,
    requestId: null,
    ok: false,
  };
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  const started = performance.now();
  let result = null;
  try {
    let response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          Accept: 'application/json, application/problem+json',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          ...headers,
          ...(token ? { Authorization: `Bearer ${token}` } : {}),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
    } catch {
      throw new ApiError(unreachableProblem(service, url, controller.signal.aborted, timeoutMs), call);
    }
    call.status = response.status;
    call.requestId = response.headers.get('x-request-id');
    let data;
    try {
      data = await readBody(response);
    } catch {
      throw new ApiError(unreachableProblem(service, url, controller.signal.aborted, timeoutMs), call);
    }
    if (!response.ok) {
      endRefusedSession(response.status, token);
      throw new ApiError(problemFrom(data, response, service, call.requestId), call);
    }
    call.ok = true;
    result = { data, status: response.status, requestId: call.requestId, latencyMs: null, call };
    return result;
  } finally {
    clearTimeout(timer);
    call.latencyMs = Math.round(performance.now() - started);
    if (result) result.latencyMs = call.latencyMs;
    if (log) record(call);
  }
}

/** Whether trying the same call again soon may well succeed. */
function isTransient(problem) {
  if (problem.retry_after !== undefined && problem.retry_after > 2) return false;
  return problem.status >= 500 || problem.code === 'timeout' || problem.code === 'unreachable';
}

/**
 * A read, tried once more after a short pause when the first attempt failed in a
 * way that may pass (5xx, timeout, no connection). Reads change nothing, so a second
 * attempt is always safe; both attempts show in the call log.
 */
async function read(service, path, options = {}) {
  const retries = options.retries ?? 1;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await request(service, 'GET', path, options);
    } catch (error) {
      if (attempt >= retries || !(error instanceof ApiError) || !isTransient(error.problem)) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250 * (attempt + 1)));
    }
  }
}

/**
 * A fresh Idempotency-Key. `crypto.randomUUID` only exists in secure contexts
 * (https, localhost, file://); behind a gateway on plain http the page builds a
 * version 4 UUID from `crypto.getRandomValues`, which exists everywhere.
 */
export function newIdempotencyKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// Polls are not retried: the next poll is two seconds away anyway.
// Health is for anyone: no token goes with it.
const POLL_OPTIONS = { log: false, timeoutMs: 1500, retries: 0, auth: false };

function health(service, { poll = false } = {}) {
  return read(service, '/health', poll ? POLL_OPTIONS : { auth: false });
}

const WRITE_TIMEOUT_MS = 15000;

export const inventoryApi = {
  listItems: () => read('inventory', '/items'),
  getItem: (sku) => read('inventory', `/items/${encodeURIComponent(sku)}`),
  listCategories: () => read('inventory', '/categories'),
  /** `inventory:write`: adds `delta` (negative takes away); answers the item. */
  adjustStock: (sku, { delta, reason }) => request('inventory', 'POST', `/items/${encodeURIComponent(sku)}/stock`, {
    body: { delta, reason },
    timeoutMs: WRITE_TIMEOUT_MS,
  }),
  /** `inventory:write`: `{sku, changes: [{at, actor, kind, ...}], count}`, newest first. */
  history: (sku) => read('inventory', `/items/${encodeURIComponent(sku)}/history`),
  health: (options) => health('inventory', options),
};

export const pricingApi = {
  listPrices: () => read('pricing', '/prices'),
  getPrice: (sku) => read('pricing', `/price/${encodeURIComponent(sku)}`),
  /** `pricing:write`: `{base_price, discount_percent, tiers: [{min_quantity, discount_percent}]}`. */
  putPrice: (sku, price) => request('pricing', 'PUT', `/price/${encodeURIComponent(sku)}`, {
    body: price,
    timeoutMs: WRITE_TIMEOUT_MS,
  }),
  /** The price's changes, the same shape as inventory's item history. */
  history: (sku) => read('pricing', `/price/${encodeURIComponent(sku)}/history`),
  health: (options) => health('pricing', options),
};

/**
 * Accounts and sign-in. These never carry a token (a 401 here means a wrong
 * password, not an expired session) and are not retried: a second sign-in
 * attempt counts against the account's throttle.
 */
export const identityApi = {
  /** 201 `{customer_id, email, name}`; 409 email_taken; 400 invalid_request. */
  createAccount: ({ email, password, name }) => request('identity', 'POST', '/accounts', {
    body: { email, password, name },
    auth: false,
    timeoutMs: WRITE_TIMEOUT_MS,
  }),
  /** 200 `{access_token, token_type, expires_in, customer_id}`; 401 invalid_credentials; 429. */
  createSession: ({ email, password }) => request('identity', 'POST', '/sessions', {
    body: { email, password },
    auth: false,
    timeoutMs: WRITE_TIMEOUT_MS,
  }),
};

export const orderApi = {
  /** `order` is `{customer_id, items: [{sku, quantity}]}` or `{customer_id, skus: [...]}`. */
  placeOrder: (order, idempotencyKey) => request('order', 'POST', '/orders', {
    body: order,
    headers: { 'Idempotency-Key': idempotencyKey },
    timeoutMs: WRITE_TIMEOUT_MS,
  }),
  /**
   * One page of a customer's orders, newest first: `{orders, count, next_cursor}`.
   * `status`: a list of statuses to keep (all when absent); `cursor`: the page
   * before's `next_cursor`; `limit`: page size (1 to 200, the service's default 50).
   */
  listOrders: (customerId, { status, cursor, limit } = {}) => {
    const query = new URLSearchParams({ customer_id: customerId });
    if (status && status.length) query.set('status', [].concat(status).join(','));
    if (cursor) query.set('cursor', cursor);
    if (limit) query.set('limit', String(limit));
    // Commas may stand as they are in a query; the call log reads better for it.
    return read('order', `/orders?${String(query).replace(/%2C/g, ',')}`);
  },
  getOrder: (id) => read('order', `/orders/${encodeURIComponent(id)}`),
  cancelOrder: (id) => request('order', 'POST', `/orders/${encodeURIComponent(id)}/cancel`, { timeoutMs: WRITE_TIMEOUT_MS }),
  health: (options) => health('order', options),
};

/**
 * Live fault control (`GET`/`PUT /admin/chaos`, present only with `CHAOS_CONTROL=on`).
 * Carries the signed-in token like any call; the read is a probe, kept out of the log.
 */
export const chaosApi = {
  /** 200 `{delay_rate, delay_ms: {min, max}, failure_rate, routes}`; 404 when control is off. */
  get: (service) => request(service, 'GET', '/admin/chaos', { log: false, timeoutMs: 3000 }),
  /** Changes only the fields given; answers the settings now in force. */
  put: (service, settings) => request(service, 'PUT', '/admin/chaos', {
    body: settings,
    timeoutMs: WRITE_TIMEOUT_MS,
  }),
};

/** The order service's Prometheus text (for the fallback share); a poll, not logged. */
export function orderMetrics() {
  return request('order', 'GET', '/metrics', { ...POLL_OPTIONS });
}

export const healthOf = {
  inventory: inventoryApi.health,
  pricing: pricingApi.health,
  order: orderApi.health,
};
