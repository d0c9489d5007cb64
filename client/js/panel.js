/**
 * The resilience panel: each service's /health, polled every couple of seconds;
 * the order service's circuit breakers (from its /health `checks.<dependency>.breaker`)
 * and the share of its orders priced from fallback prices (from its /metrics, where
 * it is served: the gateway keeps it for operators);
 * and the last calls this page made, with status, latency and request id.
 *
 * Polls run one after another (never overlapping), pause while the tab is hidden,
 * and stay out of the call log.
 */

import { h, fill, srOnly } from './dom.js';
import { healthOf, onCall, orderMetrics } from './api.js';
import { SERVICES } from '../config.js';
import { clock, duration, seconds, titleCase } from './format.js';

const STATUS_WORDS = {
  ok: 'Up',
  degraded: 'Degraded',
  unavailable: 'Unavailable',
  draining: 'Draining',
  down: 'Down',
  unknown: 'Checking…',
};

const BREAKER_WORDS = {
  closed: 'Closed',
  open: 'Open',
  half_open: 'Half-open',
  unknown: 'Unknown',
};

const BREAKER_MEANING = {
  closed: 'calls go through',
  open: 'calls fail fast without reaching the service',
  half_open: 'one trial call is let through',
  unknown: 'the order service is not answering',
};

/** The order service's dependencies whose breakers the panel shows. */
const DEPENDENCIES = ['inventory', 'pricing'];

function pill(kind, state, words) {
  return h('span', { class: `pill pill-${state}`, 'data-testid': `${kind}-state` }, words[state] || state);
}

function renderService(service, snapshot) {
  const { health, problem, latencyMs } = snapshot;
  const state = health ? (health.status || 'ok') : problem ? 'down' : 'unknown';
  const checks = health && health.checks ? Object.entries(health.checks) : [];
  return h('article', {
    class: `service service-${state}`,
    'data-testid': `health-${service}`,
    'data-status': state,
    'aria-labelledby': `health-${service}-heading`,
  },
  h('header', { class: 'service-head' },
    h('h4', { id: `health-${service}-heading` }, titleCase(service)),
    pill('health', state, STATUS_WORDS)),
  health
    ? h('dl', { class: 'facts' },
      h('div', {}, h('dt', {}, 'Version'), h('dd', {}, health.version || '?')),
      health.uptime_seconds !== undefined
        ? h('div', {}, h('dt', {}, 'Uptime'), h('dd', {}, duration(health.uptime_seconds)))
        : null,
      h('div', {}, h('dt', {}, 'Answered in'), h('dd', {}, `${latencyMs} ms`)),
      checks.map(([name, check]) => h('div', { 'data-testid': `check-${service}-${name}` },
        h('dt', {}, titleCase(name)),
        h('dd', {}, check.status === 'up' ? 'up' : h('strong', { class: 'text-bad' }, check.status),
          check.required === false ? h('span', { class: 'quiet' }, ' (optional)') : null))))
    : h('p', { class: 'service-problem', 'data-testid': `health-${service}-problem` },
      problem ? [problem.title, problem.detail ? h('span', { class: 'quiet' }, problem.detail) : null] : 'Waiting for the first answer…'));
}

function renderBreaker(dependency, check, orderReachable) {
  const breaker = check && check.breaker;
  const state = breaker ? breaker.state : 'unknown';
  const facts = [];
  if (breaker) {
    facts.push(h('div', {}, h('dt', {}, 'Failures in a row'),
      h('dd', { 'data-testid': 'breaker-failures' }, `${breaker.consecutive_failures} of ${breaker.failure_threshold}`)));
    if (state === 'open' && breaker.next_trial_at_ms) {
      facts.push(h('div', {}, h('dt', {}, 'Next trial call'),
        h('dd', { 'data-testid': 'breaker-next-trial' }, `in ${seconds(breaker.next_trial_at_ms - Date.now())}`)));
    }
    if (breaker.rejected_calls !== undefined) {
      facts.push(h('div', {}, h('dt', {}, 'Calls refused'), h('dd', {}, String(breaker.rejected_calls))));
    }
  }
  if (check && check.status) {
    facts.push(h('div', {}, h('dt', {}, 'Reachable'),
      h('dd', { 'data-testid': 'breaker-reachable' }, check.status === 'up' ? 'yes' : h('strong', { class: 'text-bad' }, 'no'))));
  }
  return h('article', {
    class: `breaker breaker-${state}`,
    'data-testid': `breaker-${dependency}`,
    'data-state': state,
    'aria-labelledby': `breaker-${dependency}-heading`,
  },
  h('header', { class: 'service-head' },
    h('h4', { id: `breaker-${dependency}-heading` }, srOnly('Breaker for '), `Order → ${dependency}`),
    pill('breaker', state, BREAKER_WORDS)),
  h('p', { class: 'quiet small' }, orderReachable || breaker ? BREAKER_MEANING[state] : BREAKER_MEANING.unknown),
  facts.length ? h('dl', { class: 'facts' }, facts) : null);
}

/**
 * The orders the order service priced, by source, from its Prometheus text
 * (`orders_by_pricing_total{source="live"|"fallback"}`); null when absent.
 */
export function pricingCounts(text) {
  const counts = { live: 0, fallback: 0 };
  let seen = false;
  for (const line of String(text || '').split('\n')) {
    const match = /^orders_by_pricing_total\{source="(live|fallback)"\} (\d+(?:\.\d+)?)/.exec(line);
    if (match) {
      counts[match[1]] = Number(match[2]);
      seen = true;
    }
  }
  return seen ? counts : null;
}

/** The order service's metrics are not served here (the gateway keeps them for operators). */
const PRIVATE = 'private';

function renderFallback(counts) {
  if (counts === PRIVATE) {
    return h('p', { class: 'quiet small', 'data-testid': 'fallback-share', 'data-share': '' },
      'Fallback share: metrics are for operators here (see the dashboards).');
  }
  if (!counts) {
    return h('p', { class: 'quiet small', 'data-testid': 'fallback-share', 'data-share': '' }, 'Fallback share: not known yet.');
  }
  const total = counts.live + counts.fallback;
  const share = total ? Math.round((counts.fallback / total) * 100) : 0;
  return h('p', { class: 'small', 'data-testid': 'fallback-share', 'data-share': String(share), 'data-fallback': String(counts.fallback) },
    h('strong', {}, `Fallback share: ${share} %`),
    h('span', { class: 'quiet' }, ` (${counts.fallback} of ${total} orders priced from the last prices seen, since the order service started)`));
}

function renderCalls(calls) {
  if (calls.length === 0) {
    return h('tr', {}, h('td', { colspan: '6', class: 'quiet' }, 'No calls yet.'));
  }
  return calls.map((call) => h('tr', {
    class: call.ok ? 'call-ok' : 'call-failed',
    'data-testid': 'call',
    'data-service': call.service,
    'data-method': call.method,
    'data-path': call.path,
    'data-status': call.status ?? '',
  },
  h('td', {}, clock(call.at)),
  h('td', {}, h('span', { class: 'method' }, call.method)),
  h('td', { class: 'call-path' }, h('span', { class: 'quiet' }, `${call.service} `), call.path),
  h('td', { class: 'num' }, call.status === null ? h('span', { class: 'text-bad' }, 'failed') : h('span', { class: call.ok ? '' : 'text-bad' }, call.status)),
  h('td', { class: 'num' }, call.latencyMs === null ? '' : `${call.latencyMs} ms`),
  h('td', { class: 'request-id' }, call.requestId ? h('code', { title: call.requestId }, call.requestId) : h('span', { class: 'quiet' }, 'none'))));
}

/**
 * Mounts the panel in `root` (the section) and starts polling every `pollMs`.
 * Returns `{ refresh }`, which polls now.
 */
export function mountPanel(root, { pollMs }) {
  const servicesEl = root.querySelector('[data-role="services"]');
  const breakersEl = root.querySelector('[data-role="breakers"]');
  const callsEl = root.querySelector('[data-role="calls"]');
  const updatedEl = root.querySelector('[data-role="updated"]');
  const fallbackEl = root.querySelector('[data-role="fallback"]');
  let pricing = null;
  const snapshots = Object.fromEntries(SERVICES.map((s) => [s, {}]));
  let timer = null;
  let polling = null;

  function render() {
    fill(servicesEl, SERVICES.map((service) => renderService(service, snapshots[service])));
    const order = snapshots.order;
    const checks = order.health && order.health.checks ? order.health.checks : {};
    fill(breakersEl, DEPENDENCIES.map((dep) => renderBreaker(dep, checks[dep], Boolean(order.health))));
    if (fallbackEl) fill(fallbackEl, renderFallback(pricing));
  }

  async function pollPricing() {
    try {
      const { data } = await orderMetrics();
      pricing = pricingCounts(data && data.text);
    } catch (error) {
      // 404: behind the gateway, which keeps metrics for operators. Anything
      // else: the health card already says the order service is not answering.
      if (error?.problem?.status === 404) pricing = PRIVATE;
    }
  }

  async function pollOnce() {
    await Promise.all([pollPricing(), ...SERVICES.map(async (service) => {
      try {
        const { data, latencyMs } = await healthOf[service]({ poll: true });
        snapshots[service] = { health: data, latencyMs, problem: null };
      } catch (error) {
        snapshots[service] = { health: null, problem: error.problem || { title: String(error) } };
      }
    })]);
    render();
    fill(updatedEl, `Updated ${clock(new Date())}`);
    root.dataset.polls = String(Number(root.dataset.polls || 0) + 1);
  }

  function refresh() {
    if (!polling) polling = pollOnce().finally(() => { polling = null; });
    return polling;
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      if (!document.hidden) await refresh();
      schedule();
    }, pollMs);
  }

  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) refresh();
  });
  onCall((calls) => fill(callsEl, renderCalls(calls)));
  render();
  refresh().then(schedule);
  return { refresh };
}
