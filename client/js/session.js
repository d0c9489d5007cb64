/**
 * Who is signed in: the access token identity gave, what the page reads from it
 * (`sub`, `exp`, `scope`, for display and to choose what to show: the services
 * enforce, the page only adapts), and the email and name typed in this tab.
 *
 * The token lives in memory and in sessionStorage (never localStorage): a reload
 * keeps the session, a closed tab forgets it. It is forgotten at `exp`, on "Sign
 * out", and when a service answers 401 to a call that carried it. Nothing here
 * writes the token (or anything else) to the console.
 */

const STORAGE_KEY = 'shop.session';
// setTimeout takes at most a signed 32-bit number of milliseconds.
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Why a session ended, in words the account area shows. */
export const END_REASONS = {
  signedOut: 'You are signed out.',
  expired: 'Your session has expired: sign in again to order as yourself.',
  refused: 'A service no longer accepts your sign-in (it may have expired): sign in again.',
};

function base64UrlDecode(text) {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/');
  const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
  const binary = atob(padded);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/**
 * The claims the page uses, read (not verified) from a JWT's payload:
 * `{ sub, exp, scopes }`, or null when the token is not a JWT with a `sub` and a
 * numeric `exp`.
 */
export function readClaims(token) {
  const parts = typeof token === 'string' ? token.split('.') : [];
  if (parts.length !== 3) return null;
  let payload;
  try {
    payload = JSON.parse(base64UrlDecode(parts[1]));
  } catch {
    return null;
  }
  if (!payload || typeof payload.sub !== 'string' || !payload.sub || !Number.isFinite(payload.exp)) return null;
  const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ').filter(Boolean) : [];
  return { sub: payload.sub, exp: payload.exp, scopes };
}

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage refused (strict settings): the session lasts as long as the page
  }
}

export const session = {
  listeners: new Set(),
  current: null, // { token, sub, exp, scopes, email, name }
  endReason: null,
  timer: null,

  subscribe(listener) {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  },
  notify() {
    for (const listener of this.listeners) listener();
  },

  get signedIn() {
    return this.current !== null;
  },
  get sub() {
    return this.current ? this.current.sub : '';
  },
  /** What the header calls the person: the name when known, else the email. */
  get displayName() {
    if (!this.current) return '';
    return this.current.name || this.current.email || this.current.sub;
  },
  has(scope) {
    return Boolean(this.current && this.current.scopes.includes(scope));
  },

  /** The token to send, or null; a token past its `exp` ends the session here. */
  bearer() {
    if (!this.current) return null;
    if (Date.now() >= this.current.exp * 1000) {
      this.end('expired');
      return null;
    }
    return this.current.token;
  },

  /**
   * Starts a session with a token identity issued. Returns false (and keeps no
   * token) when it cannot be read or has already expired.
   */
  start({ token, email = '', name = '' }) {
    const claims = readClaims(token);
    if (!claims || Date.now() >= claims.exp * 1000) return false;
    this.current = { token, ...claims, email, name };
    this.endReason = null;
    try {
      storage()?.setItem(STORAGE_KEY, JSON.stringify({ token, email, name }));
    } catch {
      // full or refused: the session still lasts as long as the page
    }
    this.arm();
    this.notify();
    return true;
  },

  /** Forgets the token; `reason` is a key of END_REASONS. */
  end(reason = 'signedOut') {
    const was = this.current !== null;
    this.current = null;
    this.endReason = reason;
    clearTimeout(this.timer);
    try {
      storage()?.removeItem(STORAGE_KEY);
    } catch {
      // nothing stored
    }
    if (was) this.notify();
  },

  /** Picks up the session this tab had before a reload, if it is still valid. */
  restore() {
    let saved = null;
    try {
      saved = JSON.parse(storage()?.getItem(STORAGE_KEY) || 'null');
    } catch {
      saved = null;
    }
    if (!saved || !saved.token) return;
    if (!this.start(saved)) this.end('expired');
  },

  /** Ends the session at `exp`, so an expired token is never sent. */
  arm() {
    clearTimeout(this.timer);
    const left = this.current.exp * 1000 - Date.now();
    this.timer = setTimeout(() => {
      if (this.current && Date.now() >= this.current.exp * 1000) this.end('expired');
      else if (this.current) this.arm();
    }, Math.min(Math.max(left, 0), MAX_TIMER_MS));
  },
};
