// The page's configuration rules and the file:// bundle, checked without a browser.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolveConfig } from '../config.js';
import { settleConnection } from '../js/connection.js';
import { buildBundle, BUNDLE_PATH } from './tools/bundle.mjs';

const at = (href) => {
  const url = new URL(href);
  return { location: { protocol: url.protocol, hostname: url.hostname, port: url.port }, search: url.search };
};

test('a page served by the gateway on port 8080 uses same-origin prefixes', () => {
  const config = resolveConfig(at('http://localhost:8080/'));
  assert.equal(config.mode, 'gateway');
  assert.deepEqual(config.services, { inventory: '/inventory', pricing: '/pricing', order: '/order', identity: '/identity' });
  assert.equal(config.source, 'automatic');
});

test('a page on another host is taken to be behind the gateway, whatever the port', () => {
  assert.equal(resolveConfig(at('https://shop.example.com/')).mode, 'gateway');
  assert.equal(resolveConfig(at('http://10.1.2.3:3000/')).mode, 'gateway');
});

test('a page served from localhost on another port calls the services on their own ports', () => {
  const config = resolveConfig(at('http://localhost:8000/index.html'));
  assert.equal(config.mode, 'direct');
  assert.deepEqual(config.services, {
    inventory: 'http://localhost:7001',
    pricing: 'http://localhost:7003',
    order: 'http://localhost:7002',
    identity: 'http://localhost:7004',
  });
});

test('a page on 127.0.0.1 keeps that host name for the services', () => {
  assert.equal(resolveConfig(at('http://127.0.0.1:8000/')).services.order, 'http://127.0.0.1:7002');
});

test('a page opened as a file calls localhost ports', () => {
  const config = resolveConfig({ location: { protocol: 'file:', hostname: '', port: '' } });
  assert.equal(config.mode, 'direct');
  assert.equal(config.services.inventory, 'http://localhost:7001');
});

test('query parameters override everything, trailing slashes dropped', () => {
  const config = resolveConfig({
    ...at('http://localhost:8080/?order=http://127.0.0.1:9002/&poll=250&demo=1'),
    override: { order: 'http://ignored:1' },
  });
  assert.equal(config.mode, 'gateway');
  assert.equal(config.services.order, 'http://127.0.0.1:9002');
  assert.equal(config.services.inventory, '/inventory');
  assert.equal(config.healthPollMs, 250);
  assert.equal(config.autoDemo, true);
  assert.equal(config.source, 'override');
});

test('identity is a fourth service: its own port directly, /identity behind the gateway, overridable', () => {
  assert.equal(resolveConfig(at('http://127.0.0.1:8000/')).services.identity, 'http://127.0.0.1:7004');
  assert.equal(resolveConfig(at('https://shop.example.com/')).services.identity, '/identity');
  assert.equal(resolveConfig({ location: { protocol: 'file:', hostname: '', port: '' } }).services.identity, 'http://localhost:7004');
  const asked = resolveConfig(at('http://localhost:8000/?identity=http://127.0.0.1:9004/'));
  assert.equal(asked.services.identity, 'http://127.0.0.1:9004');
  assert.equal(asked.services.order, 'http://localhost:7002');
  assert.equal(asked.source, 'override');
  const given = resolveConfig({ ...at('http://localhost:8080/'), override: { identity: 'https://id.example.com' } });
  assert.equal(given.services.identity, 'https://id.example.com');
  assert.equal(given.services.inventory, '/inventory');
});

test('window.SHOP_CONFIG can choose the mode and the bases', () => {
  const config = resolveConfig({
    ...at('http://localhost:8000/'),
    override: { mode: 'gateway', pricing: 'https://prices.example.com', healthPollMs: 5000 },
  });
  assert.equal(config.mode, 'gateway');
  assert.equal(config.services.pricing, 'https://prices.example.com');
  assert.equal(config.services.inventory, '/inventory');
  assert.equal(config.healthPollMs, 5000);
});

test('?api= forces a mode and nonsense falls back to the automatic choice', () => {
  assert.equal(resolveConfig(at('http://localhost:8080/?api=direct')).services.order, 'http://localhost:7002');
  assert.equal(resolveConfig(at('http://localhost:8000/?api=sideways')).mode, 'direct');
  assert.equal(resolveConfig(at('http://localhost:8000/?poll=-3')).healthPollMs, 2000);
});

test('direct mode on another host calls the services on that host', () => {
  assert.equal(resolveConfig(at('http://192.168.1.5:8000/?api=direct')).services.pricing, 'http://192.168.1.5:7003');
});

/** A stand-in for fetch: `answers` maps URLs to a content type; anything else is refused. */
function fakeFetch(answers, asked = []) {
  return async (url) => {
    asked.push(url);
    if (!(url in answers)) throw new TypeError('Failed to fetch');
    return { ok: true, headers: new Map([['content-type', answers[url]]]) };
  };
}

test('an automatic gateway choice that finds a gateway is kept', async () => {
  const page = at('http://localhost:8080/');
  const asked = [];
  const config = await settleConnection(resolveConfig(page), page.location,
    fakeFetch({ '/inventory/health': 'application/json' }, asked));
  assert.equal(config.mode, 'gateway');
  assert.deepEqual(asked, ['/inventory/health']);
});

test('a plain static server on :8080 is no gateway: the page falls back to the service ports', async () => {
  const page = at('http://localhost:8080/?poll=700');
  const config = await settleConnection(resolveConfig(page), page.location,
    fakeFetch({ '/inventory/health': 'text/html', 'http://localhost:7001/health': 'application/json' }));
  assert.equal(config.mode, 'direct');
  assert.equal(config.source, 'fallback');
  assert.equal(config.services.order, 'http://localhost:7002');
  assert.equal(config.healthPollMs, 700);
});

test('when nothing answers the gateway choice stays, and explicit choices are never probed', async () => {
  const page = at('http://localhost:8080/');
  assert.equal((await settleConnection(resolveConfig(page), page.location, fakeFetch({}))).mode, 'gateway');
  const asked = [];
  const forced = at('http://localhost:8080/?api=gateway');
  await settleConnection(resolveConfig(forced), forced.location, fakeFetch({}, asked));
  const direct = at('http://localhost:8000/');
  await settleConnection(resolveConfig(direct), direct.location, fakeFetch({}, asked));
  assert.deepEqual(asked, []);
});

test('shop.bundle.js (the file:// fallback) matches the modules it is built from', () => {
  const current = readFileSync(BUNDLE_PATH, 'utf8');
  assert.ok(current === buildBundle(), 'client/shop.bundle.js is out of date: run `npm run bundle` in client/tests');
});
