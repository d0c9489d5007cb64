/**
 * Settles where the services are before the page makes its first call.
 *
 * The automatic choice in config.js takes a page on port 8080 (or on another host)
 * to be behind the gateway. A plain static server can sit there too (the local
 * one-command run serves client/ on :8080 with `python3 -m http.server`), and it
 * has no /inventory/… to proxy. So, when the choice was automatic, the page first
 * asks the gateway for inventory's /health; if no JSON comes back but the services
 * answer on their own ports, it calls them there instead. An explicit choice
 * (query parameters, window.SHOP_CONFIG) is never second-guessed.
 */

import { resolveConfig } from '../config.js';

const PROBE_TIMEOUT_MS = 1500;

async function answersJson(url, fetchFn) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
  try {
    const response = await fetchFn(url, { headers: { Accept: 'application/json' }, signal: controller.signal });
    return response.ok && (response.headers.get('content-type') || '').includes('json');
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Returns the configuration to use: `config` itself, or (automatic gateway choice,
 * no gateway, services on their ports) the direct one, with `source: 'fallback'`.
 */
export async function settleConnection(config, location, fetchFn = (...args) => fetch(...args)) {
  if (config.source !== 'automatic' || config.mode !== 'gateway') return config;
  if (await answersJson(`${config.services.inventory}/health`, fetchFn)) return config;
  const direct = resolveConfig({ location, override: { mode: 'direct', healthPollMs: config.healthPollMs } });
  if (await answersJson(`${direct.services.inventory}/health`, fetchFn)) {
    return { ...direct, autoDemo: config.autoDemo, source: 'fallback' };
  }
  return config; // neither answers: keep the gateway; the panel will show what is down
}
