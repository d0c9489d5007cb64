/**
 * Where the services are, decided once when the page loads: the three shop
 * services, and identity (accounts and sign-in) beside them.
 *
 * Two ways to reach them:
 * - "gateway": the page is served by the gateway (port 8080, or any host that is
 *   not this machine), which proxies same-origin prefixes: /inventory/…,
 *   /pricing/…, /order/…, /identity/… (the prefix is stripped before the service sees it).
 * - "direct": the page is served from localhost by something else
 *   (`python3 -m http.server`) or opened as a file://, so it calls the services
 *   on their own ports over CORS: 7001 inventory, 7002 order, 7003 pricing,
 *   7004 identity.
 *
 * Overrides, strongest first:
 * 1. query parameters: `?api=gateway|direct`, `?inventory=URL&pricing=URL&order=URL&identity=URL`,
 *    `?poll=MS` (health poll interval), `?demo=1` (run the whole demo on load);
 * 2. `window.SHOP_CONFIG = { mode, inventory, pricing, order, identity, healthPollMs }`, set by a
 *    classic <script> that runs before the page's modules (e.g. one a deployment adds);
 * 3. the automatic choice above (which js/connection.js checks before the first call:
 *    a plain static server on :8080 is no gateway).
 */

/** The shop's services: the resilience panel watches these. */
export const SERVICES = ['inventory', 'pricing', 'order'];
/** Every service the page may call: the shop's, and identity for accounts and sign-in. */
export const ALL_SERVICES = [...SERVICES, 'identity'];

const DIRECT_PORTS = { inventory: 7001, order: 7002, pricing: 7003, identity: 7004 };
const GATEWAY_PORT = '8080';
const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);
const DEFAULT_POLL_MS = 2000;

/** Picks "gateway" or "direct" from where the page itself was loaded. */
export function autoMode(location) {
  if (location.protocol === 'file:') return 'direct';
  if (location.port === GATEWAY_PORT) return 'gateway';
  if (!LOOPBACK_HOSTS.has(location.hostname)) return 'gateway';
  return 'direct';
}

function defaultBases(mode, location) {
  if (mode === 'gateway') {
    return { inventory: '/inventory', pricing: '/pricing', order: '/order', identity: '/identity' };
  }
  // The services run beside the page's own server (127.0.0.1 stays 127.0.0.1); a
  // file:// page has no host, so it gets "localhost".
  const host = location.protocol !== 'file:' && location.hostname ? location.hostname : 'localhost';
  const bases = {};
  for (const service of ALL_SERVICES) bases[service] = `http://${host}:${DIRECT_PORTS[service]}`;
  return bases;
}

function positiveNumber(value) {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? n : null;
}

/**
 * The configuration for a page at `location` (anything with protocol, hostname
 * and port), with `override` (window.SHOP_CONFIG) and `search` (location.search).
 * Pure, so it can be tested without a browser.
 */
export function resolveConfig({ location, override = {}, search = '' }) {
  const params = new URLSearchParams(search);
  const asked = params.get('api') || override.mode;
  const mode = asked === 'gateway' || asked === 'direct' ? asked : autoMode(location);
  const defaults = defaultBases(mode, location);

  const services = {};
  let overridden = Boolean(asked);
  for (const service of ALL_SERVICES) {
    const given = params.get(service) || override[service];
    if (given) overridden = true;
    services[service] = String(given || defaults[service]).replace(/\/+$/, '');
  }

  return {
    mode,
    services,
    healthPollMs: positiveNumber(params.get('poll')) ?? positiveNumber(override.healthPollMs) ?? DEFAULT_POLL_MS,
    autoDemo: params.get('demo') === '1',
    source: overridden ? 'override' : 'automatic',
  };
}

/** The configuration of this page. */
export const config = typeof window === 'undefined'
  ? resolveConfig({ location: { protocol: 'http:', hostname: 'localhost', port: '' } })
  : resolveConfig({
    location: window.location,
    override: window.SHOP_CONFIG || {},
    search: window.location.search,
  });
