/**
 * What the page knows between calls: the last catalogue it loaded (items and
 * prices by sku), the cart, and the customer id (remembered in localStorage, or,
 * when someone is signed in, their token's `sub`).
 *
 * Views read from here and subscribe to changes; they never keep their own copy.
 */

import { session } from './session.js';

const CUSTOMER_KEY = 'shop.customerId';
const MAX_QUANTITY = 9999;

function observable() {
  const listeners = new Set();
  return {
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    notify() {
      for (const listener of listeners) listener();
    },
  };
}

/** The catalogue as last loaded: items and prices by sku. */
export const catalogue = {
  ...observable(),
  items: new Map(),
  prices: new Map(),
  /** Replaces what is known; `prices` null means "could not be loaded, keep the old ones". */
  update({ items, prices }) {
    if (items) this.items = new Map(items.map((item) => [item.sku, item]));
    if (prices) this.prices = new Map(prices.map((price) => [price.sku, price]));
    this.notify();
  },
  item(sku) {
    return this.items.get(sku);
  },
  price(sku) {
    return this.prices.get(sku);
  },
};

/** Quantities by sku, in the order they were added. */
export const cart = {
  ...observable(),
  quantities: new Map(),
  add(sku, quantity = 1) {
    this.set(sku, (this.quantities.get(sku) || 0) + quantity);
  },
  /** Sets a quantity, clamped to 1..9999; use `remove` to take a line out. */
  set(sku, quantity) {
    const n = Math.min(MAX_QUANTITY, Math.max(1, Math.floor(Number(quantity)) || 1));
    this.quantities.set(sku, n);
    this.notify();
  },
  remove(sku) {
    this.quantities.delete(sku);
    this.notify();
  },
  clear() {
    this.quantities.clear();
    this.notify();
  },
  lines() {
    return Array.from(this.quantities, ([sku, quantity]) => ({ sku, quantity }));
  },
  get size() {
    return this.quantities.size;
  },
  get units() {
    let n = 0;
    for (const quantity of this.quantities.values()) n += quantity;
    return n;
  },
};

export const MAX_CART_QUANTITY = MAX_QUANTITY;

/**
 * The customer id. Signed in, it is the account's (the token's `sub`) and cannot
 * be changed here; signed out, it is what was typed, kept across visits. Storage
 * can be missing or refuse writes (private windows, strict file:// settings): the
 * page then simply forgets.
 */
export const customer = {
  ...observable(),
  /** Whether the id is the signed-in account's (and so not to be edited). */
  get fromAccount() {
    return session.signedIn;
  },
  get id() {
    if (session.signedIn) return session.sub;
    return this.typed;
  },
  get typed() {
    try {
      return localStorage.getItem(CUSTOMER_KEY) || '';
    } catch {
      return this.fallback || '';
    }
  },
  set id(value) {
    if (session.signedIn) return;
    const id = String(value).trim();
    if (id === this.id) return;
    try {
      localStorage.setItem(CUSTOMER_KEY, id);
    } catch {
      this.fallback = id;
    }
    this.notify();
  },
  fallback: '',
};

// Signing in or out changes whose orders the page shows.
let lastId = customer.id;
session.subscribe(() => {
  if (customer.id === lastId) return;
  lastId = customer.id;
  customer.notify();
});
customer.subscribe(() => {
  lastId = customer.id;
});
