/**
 * What the browser tests run against: the real service binaries from
 * target/debug (built by `cargo build --workspace --bins`) on free loopback ports
 * with throwaway in-memory databases, client/ served by `python3 -m http.server`,
 * and Debian's Chromium driven by playwright-core.
 *
 * The page is pointed at the services with its query-string override
 * (?inventory=…&pricing=…&order=…&identity=…), the same one a person can use.
 *
 * With `auth`, identity runs too (its own throwaway DATA_DIR for the signing key it
 * generates) and the shop's services verify its tokens (AUTH_ISSUER, not required).
 *
 * With `events`, a real `nats-server -js` runs too (NATS_SERVER_BIN, else nats-server
 * on the PATH or in /usr/sbin; its own throwaway store) and the shop's services get
 * its NATS_URL, so they publish events.
 */

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';

export const CLIENT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = resolve(CLIENT_DIR, '..');
export const SCREENSHOT_DIR = join(CLIENT_DIR, 'screenshots');
const TARGET_DIR = resolve(REPO_DIR, process.env.CARGO_TARGET_DIR || 'target');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 375, height: 812 };

const READY_TIMEOUT_MS = 30_000;

/** A port nobody listens on right now. */
async function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

/** A child process whose output is kept, to show when something fails. */
class Child {
  constructor(name, command, args, env) {
    this.name = name;
    this.output = '';
    this.exited = null;
    this.process = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (chunk) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    this.process.stdout.on('data', keep);
    this.process.stderr.on('data', keep);
    this.exitPromise = new Promise((resolveExit) => {
      this.process.on('exit', (code, signal) => {
        this.exited = { code, signal };
        resolveExit(this.exited);
      });
      this.process.on('error', (error) => {
        this.output += `\n${error.message}`;
        this.exited = { code: null, signal: null, error };
        resolveExit(this.exited);
      });
    });
  }

  /** Stops the process (SIGKILL: the tests want an abrupt death) and waits for it. */
  async kill(signal = 'SIGKILL') {
    if (!this.exited) this.process.kill(signal);
    await this.exitPromise;
  }
}

async function waitUntilAnswers(child, url) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exited) {
      throw new Error(`${child.name} exited (${JSON.stringify(child.exited)}) before answering ${url}:\n${child.output}`);
    }
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${child.name} did not answer ${url} within ${READY_TIMEOUT_MS} ms:\n${child.output}`);
}

function serviceEnv(extra) {
  const env = { ...process.env };
  // The tests want deterministic services: no injected faults, no token, no limits,
  // and auth and events only where a test turns them on.
  for (const name of Object.keys(env)) {
    if (['CHAOS_', 'AUTH_', 'IDENTITY_', 'RATE_LIMIT_', 'NATS_', 'EVENTS_'].some((prefix) => name.startsWith(prefix))) delete env[name];
  }
  delete env.SERVICE_TOKEN;
  delete env.CORS_ALLOWED_ORIGINS;
  return {
    ...env,
    HOST: '127.0.0.1',
    DATABASE_URL: 'sqlite::memory:',
    RUST_LOG: process.env.TEST_RUST_LOG || 'warn',
    LOG_FORMAT: 'text',
    ...extra,
  };
}

export function binaryPath(service) {
  return join(TARGET_DIR, 'debug', service);
}

const SHOP_SERVICES = ['inventory', 'pricing', 'order'];

/** The nats-server binary to run, or null when this machine has none. */
export function natsServerBinary() {
  const candidates = process.env.NATS_SERVER_BIN
    ? [process.env.NATS_SERVER_BIN]
    : [...(process.env.PATH || '').split(':').filter(Boolean).map((dir) => join(dir, 'nats-server')), '/usr/sbin/nats-server'];
  return candidates.find((candidate) => existsSync(candidate)) || null;
}

/** Starts nats-server with JetStream on free ports; resolves to `{ child, url, storeDir }`. */
async function startNats() {
  const binary = natsServerBinary();
  if (!binary) throw new Error('nats-server is missing: install it, or set NATS_SERVER_BIN');
  const [port, monitor] = [await freePort(), await freePort()];
  const storeDir = mkdtempSync(join(tmpdir(), 'nats-'));
  const child = new Child('nats', binary,
    ['-js', '-a', '127.0.0.1', '-p', String(port), '-m', String(monitor), '-sd', storeDir], { ...process.env });
  try {
    await waitUntilAnswers(child, `http://127.0.0.1:${monitor}/healthz?js-enabled-only=true`);
  } catch (error) {
    await child.kill();
    rmSync(storeDir, { recursive: true, force: true });
    throw error;
  }
  return { child, url: `nats://127.0.0.1:${port}`, storeDir };
}

/** The order service's client at identity in an auth stack (test credentials only). */
const ORDER_CLIENT = { client_id: 'order', client_secret: 'order-test-secret', scopes: ['inventory:reserve'] };

/**
 * Starts the services named in `services` (any of inventory, pricing, order,
 * identity) and the static server. `env.<service>` adds to that service's
 * environment. `auth: { operators }` starts identity first (issuer = its own URL;
 * `operators`, a list of `{email, password, name}`, provisioned as IDENTITY_ACCOUNTS
 * and named in IDENTITY_OPERATORS) and turns token verification on in the others
 * (AUTH_ISSUER = identity, AUTH_REQUIRED=false), order holding identity's client
 * `order` for its reservations. `events` starts nats-server first and
 * gives the shop's services its NATS_URL (and a quick outbox relay).
 */
export async function startStack({ services = SHOP_SERVICES, env = {}, auth = null, events = false } = {}) {
  const ports = {
    inventory: await freePort(),
    pricing: await freePort(),
    order: await freePort(),
    identity: await freePort(),
    web: await freePort(),
  };
  const urls = {
    inventory: `http://127.0.0.1:${ports.inventory}`,
    pricing: `http://127.0.0.1:${ports.pricing}`,
    order: `http://127.0.0.1:${ports.order}`,
    // Always passed to the page; nothing listens there unless identity was started.
    identity: `http://127.0.0.1:${ports.identity}`,
  };
  const started = auth ? ['identity', ...services.filter((s) => s !== 'identity')] : services;
  const dataDir = started.includes('identity') ? mkdtempSync(join(tmpdir(), 'identity-')) : null;
  const children = {};
  const nats = events ? await startNats() : null;
  if (nats) children.nats = nats.child;
  const stack = {
    urls,
    web: `http://127.0.0.1:${ports.web}`,
    children,
    /** The page URL, pointed at this stack; `params` adds query parameters. */
    pageUrl(params = {}) {
      const query = new URLSearchParams({ ...urls, poll: '500', ...params });
      return `${this.web}/index.html?${query}`;
    },
    /** The same page opened as a file:// (it then runs shop.bundle.js). */
    fileUrl(params = {}) {
      const query = new URLSearchParams({ ...urls, poll: '500', ...params });
      return `${pathToFileURL(join(CLIENT_DIR, 'index.html'))}?${query}`;
    },
    async kill(name) {
      await children[name].kill();
    },
    async stop() {
      await Promise.all(Object.values(children).map((child) => child.kill()));
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
      if (nats) rmSync(nats.storeDir, { recursive: true, force: true });
    },
    /** The output of every process, for a failure message. */
    logs() {
      return Object.values(children).map((c) => `---- ${c.name}\n${c.output}`).join('\n');
    },
  };

  try {
    const common = {
      ...(auth ? { AUTH_ISSUER: urls.identity, AUTH_REQUIRED: 'false' } : {}),
      ...(nats ? { NATS_URL: nats.url, EVENTS_RELAY_INTERVAL_MS: '50' } : {}),
    };
    const envs = {
      inventory: { ...common, ...env.inventory },
      pricing: { ...common, ...env.pricing },
      order: {
        INVENTORY_URL: urls.inventory,
        PRICING_URL: urls.pricing,
        REQUEST_TIMEOUT_MS: '1000',
        BREAKER_FAILURE_THRESHOLD: '1',
        BREAKER_RESET_TIMEOUT_MS: '60000',
        ...common,
        // Reservations need inventory:reserve once an issuer is set, whatever
        // AUTH_REQUIRED says (fail closed): order gets its token as a client.
        ...(auth ? { AUTH_CLIENT_ID: ORDER_CLIENT.client_id, AUTH_CLIENT_SECRET: ORDER_CLIENT.client_secret } : {}),
        ...env.order,
      },
      identity: {
        IDENTITY_ISSUER: urls.identity,
        DATA_DIR: dataDir,
        ...(auth ? { IDENTITY_CLIENTS: JSON.stringify([ORDER_CLIENT]) } : {}),
        // Operators are provisioned, never signed up: identity refuses their emails on POST /accounts.
        ...(auth && auth.operators ? {
          IDENTITY_OPERATORS: auth.operators.map((a) => a.email).join(','),
          IDENTITY_ACCOUNTS: JSON.stringify(auth.operators),
        } : {}),
        ...env.identity,
      },
    };
    const launch = (service) => {
      const binary = binaryPath(service);
      if (!existsSync(binary)) {
        throw new Error(`${binary} is missing: run \`cargo build --workspace --bins\` first`);
      }
      children[service] = new Child(service, binary, [],
        serviceEnv({ PORT: String(ports[service]), ...envs[service] }));
      return waitUntilAnswers(children[service], `${urls[service]}/health/ready`);
    };
    // The others read identity's discovery document: it answers first.
    if (auth) await launch('identity');
    children.web = new Child('web', 'python3',
      ['-m', 'http.server', String(ports.web), '--bind', '127.0.0.1', '--directory', CLIENT_DIR],
      { ...process.env, PYTHONUNBUFFERED: '1' });

    await Promise.all([
      ...started.filter((service) => !children[service]).map(launch),
      waitUntilAnswers(children.web, `${stack.web}/index.html`),
    ]);
  } catch (error) {
    await stack.stop();
    throw error;
  }
  return stack;
}

export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
    ],
  });
}

/**
 * A fresh page (own storage) at `viewport`, with the page's uncaught errors kept
 * in `page.errors` so a test can require there were none.
 */
export async function newPage(browser, viewport = DESKTOP) {
  const context = await browser.newContext({ viewport, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  return page;
}

/** Opens the shop and waits until it has started and loaded the catalogue. */
export async function openShop(page, url) {
  await page.goto(url);
  await page.waitForSelector('body[data-ready="true"]');
  await page.waitForSelector('#shop[data-loaded="true"]');
}

/** Waits until `fn(arg)` in the page returns truthy; the message names what was awaited. */
export async function waitFor(page, what, fn, arg, timeout = 15_000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (error) {
    throw new Error(`timed out waiting for ${what}: ${error.message.split('\n')[0]}`);
  }
}

/** The trimmed text of the first element matching the test id. */
export async function textOf(scope, testId) {
  return (await scope.locator(`[data-testid="${testId}"]`).first().innerText()).trim();
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  // No hover effect or scrolled sticky cart in the picture.
  await page.mouse.move(0, 0);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SCREENSHOT_DIR, name), fullPage: true });
}

/** The widest element overflow at the current viewport (0 when nothing sticks out). */
export async function horizontalOverflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

/** Puts `lines` ([sku, quantity] pairs) in the cart and places the order as
 * `customerId`; the order card, or an error naming the problem shown. */
export async function orderFromCart(page, lines, customerId) {
  for (const [sku, quantity] of lines) {
    await page.click(`[data-testid="add-${sku}"]`);
    if (quantity > 1) {
      await page.fill(`[data-testid="qty-${sku}"]`, String(quantity));
      await page.press(`[data-testid="qty-${sku}"]`, 'Tab');
    }
  }
  await page.fill('#customer-id', customerId);
  await page.click('[data-testid="place-order"]');
  const card = page.locator('[data-testid="order-result"] article.order');
  const problem = page.locator('[data-testid="order-result"] [data-testid="problem"]');
  await card.or(problem).first().waitFor();
  if (await problem.count()) {
    throw new Error(`the order was refused: ${await problem.innerText()}`);
  }
  return card;
}
