/**
 * Fault control in the resilience panel: "Slow inventory", "Break pricing" and
 * "Heal all", through each service's `GET`/`PUT /admin/chaos` (present only with
 * `CHAOS_CONTROL=on`; with access control on it takes an operator's token, which
 * the page sends when someone is signed in).
 *
 * Each service's control is read when the panel opens and whenever the sign-in
 * changes: a 404 means the control is off there, a 401/403 that it needs an
 * operator (or the service token); the buttons that need such a service are
 * disabled and say why. After a change the panel's next poll shows the order
 * service's breakers and fallback share reacting.
 */

import { h, fill } from './dom.js';
import { ApiError, chaosApi } from './api.js';
import { ALL_SERVICES } from '../config.js';
import { session } from './session.js';

/**
 * The order service gives up on a call after REQUEST_TIMEOUT_MS (2000 ms by
 * default): every inventory answer held back 2.5 to 3 s times out there, so its
 * inventory breaker counts failures and opens.
 */
const SLOW = { delay_rate: 1, delay_ms: { min: 2500, max: 3000 }, failure_rate: 0, routes: [] };
const BROKEN = { failure_rate: 1, delay_rate: 0, routes: [] };
const HEALED = { delay_rate: 0, failure_rate: 0, routes: [] };

const ACTIONS = [
  { id: 'slow-inventory', label: 'Slow inventory', targets: ['inventory'], settings: SLOW,
    done: 'Inventory now holds every answer back 2.5–3 s: longer than the order service waits.' },
  { id: 'break-pricing', label: 'Break pricing', targets: ['pricing'], settings: BROKEN,
    done: 'Pricing now fails every request: orders fall back to the last prices seen.' },
  { id: 'heal-all', label: 'Heal all', targets: ALL_SERVICES, settings: HEALED, any: true,
    done: 'No faults injected any more. Open breakers close after their next successful trial call.' },
];

/** What the control's answer (or refusal) means for the buttons. */
function availability(error) {
  const status = error instanceof ApiError ? error.problem.status : 0;
  if (status === 404) return { usable: false, why: 'fault control is off (CHAOS_CONTROL=off)' };
  if (status === 401) {
    return { usable: false, why: session.signedIn ? 'your sign-in is not accepted' : 'needs an operator: sign in' };
  }
  if (status === 403) return { usable: false, why: 'your account lacks chaos:write' };
  return { usable: false, why: error instanceof ApiError ? error.problem.title : String(error) };
}

function describe(settings) {
  if (!settings) return '';
  const parts = [];
  if (settings.failure_rate > 0) parts.push(`fails ${Math.round(settings.failure_rate * 100)} %`);
  if (settings.delay_rate > 0) {
    parts.push(`delays ${Math.round(settings.delay_rate * 100)} % by ${settings.delay_ms.min}–${settings.delay_ms.max} ms`);
  }
  if (parts.length === 0) return 'no faults';
  const where = settings.routes && settings.routes.length ? ` (${settings.routes.join(', ')})` : '';
  return parts.join(', ') + where;
}

/** Mounts the controls in `root`; `onChanged()` runs after every change (a panel poll). */
export function mountFaults(root, { onChanged = () => {} } = {}) {
  const controls = Object.fromEntries(ALL_SERVICES.map((s) => [s, { usable: false, why: 'checking…' }]));
  let message = null;
  let working = false;

  function usable(action) {
    const ok = action.targets.filter((s) => controls[s].usable);
    return action.any ? ok.length > 0 : ok.length === action.targets.length;
  }

  function render() {
    const buttons = ACTIONS.map((action) => {
      const blocked = action.targets.filter((s) => !controls[s].usable);
      const title = blocked.length && !usable(action)
        ? blocked.map((s) => `${s}: ${controls[s].why}`).join('; ')
        : '';
      return h('button', {
        type: 'button',
        class: action.id === 'heal-all' ? 'button button-secondary' : 'button',
        'data-testid': `chaos-${action.id}`,
        disabled: working || !usable(action),
        title: title || null,
        onclick: () => run(action),
      }, action.label);
    });
    const states = ALL_SERVICES.map((service) => {
      const c = controls[service];
      return h('li', { 'data-testid': `chaos-${service}`, 'data-usable': String(c.usable) },
        h('strong', {}, service), ': ',
        c.usable ? describe(c.settings) : h('span', { class: 'quiet' }, c.why));
    });
    fill(root,
      h('div', { class: 'ops-buttons' }, buttons),
      h('ul', { class: 'small chaos-states' }, states),
      message ? h('p', { role: 'status', 'data-testid': 'chaos-message', class: message.ok ? '' : 'text-bad' }, message.text) : null);
  }

  async function check(service) {
    try {
      const { data } = await chaosApi.get(service);
      controls[service] = { usable: true, settings: data };
    } catch (error) {
      controls[service] = availability(error);
    }
  }

  async function refresh() {
    await Promise.all(ALL_SERVICES.map(check));
    render();
  }

  async function run(action) {
    working = true;
    render();
    const targets = action.targets.filter((s) => controls[s].usable);
    const failed = [];
    await Promise.all(targets.map(async (service) => {
      try {
        const { data } = await chaosApi.put(service, action.settings);
        controls[service] = { usable: true, settings: data };
      } catch (error) {
        failed.push(`${service}: ${error instanceof ApiError ? error.problem.title : String(error)}`);
        controls[service] = availability(error);
      }
    }));
    working = false;
    message = failed.length
      ? { ok: false, text: `Not everywhere: ${failed.join('; ')}` }
      : { ok: true, text: action.done };
    render();
    onChanged();
  }

  session.subscribe(() => refresh());
  render();
  refresh();
  return { refresh };
}
