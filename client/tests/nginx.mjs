/**
 * The real gateway (docker/gateway/*) on this machine, for the tests of what only nginx
 * does: rate limits, security headers, header forwarding. Renders gateway.conf.template
 * as the image's entrypoint does (envsubst of the named variables only, so nginx's own
 * $variables stay), points the image's paths at a temporary directory, and runs
 * `nginx -g 'daemon off;'` on a free port. Without an nginx binary it resolves to null.
 */

import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_DIR } from './harness.mjs';

const GATEWAY_DIR = join(REPO_DIR, 'docker', 'gateway');

function nginxBinary() {
  for (const candidate of ['nginx', '/usr/sbin/nginx']) {
    if (spawnSync(candidate, ['-v']).status === 0) return candidate;
  }
  return null;
}

function freePort(host) {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** `${NAME}` replaced for the given names only, as the image's envsubst step does. */
export function render(template, vars) {
  return template.replace(/\$\{([A-Z_]+)\}/g, (whole, name) => (name in vars ? vars[name] : whole));
}

/** What the image's `script` (an entrypoint .envsh, sourced by sh) exports as `name`, given `env`. */
function sourced(script, env, name) {
  const path = join(GATEWAY_DIR, script);
  const run = spawnSync('sh', ['-c', `. "$1" && printf %s "$${name}"`, 'sh', path], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, ...env },
  });
  if (run.status !== 0) throw new Error(`${script} failed:\n${run.stderr}`);
  return run.stdout;
}

/**
 * GATEWAY_REAL_IP_FROM for a GATEWAY_TRUSTED_PROXIES value, from the image's own
 * 16-gateway-trusted-proxies.envsh, sourced by sh as the entrypoint does.
 */
export function realIpFrom(trustedProxies) {
  return sourced('16-gateway-trusted-proxies.envsh', { GATEWAY_TRUSTED_PROXIES: trustedProxies }, 'GATEWAY_REAL_IP_FROM');
}

/**
 * GATEWAY_SERVICE_PORTS_INCLUDE as the image's 17-gateway-service-ports.envsh sets it with
 * GATEWAY_SERVICE_PORTS unset (the default): no listeners on the services' own ports.
 */
function servicePortsInclude() {
  return sourced('17-gateway-service-ports.envsh', {}, 'GATEWAY_SERVICE_PORTS_INCLUDE');
}

/** Resolves once something accepts connections on host:port (nginx has bound). */
function listening(host, port, child) {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`nginx exited with ${child.exitCode}`));
      const socket = connect({ host, port });
      socket.on('connect', () => { socket.destroy(); resolve(); });
      socket.on('error', () => setImmediate(attempt));
    };
    attempt();
  });
}

/**
 * Starts nginx with the gateway's configuration. `upstreams` maps INVENTORY, PRICING,
 * ORDER and IDENTITY to host:port; `trustedProxies` is GATEWAY_TRUSTED_PROXIES (default
 * none, as in the image). Resolves to `{ url, statusUrl, close, check }` or null
 * (statusUrl: the internal stub_status server, port 8081 in the image).
 */
export async function startNginx({ root, upstreams, host = '127.0.0.1', trustedProxies = '' }) {
  const nginx = nginxBinary();
  if (!nginx) return null;
  const dir = mkdtempSync(join(tmpdir(), 'gateway-'));
  const port = await freePort(host);
  // The stub_status server (for the metrics exporter) on a free port too.
  const statusPort = await freePort(host);
  const vars = {
    GATEWAY_RESOLVER: '127.0.0.1',
    GATEWAY_REAL_IP_FROM: realIpFrom(trustedProxies),
    GATEWAY_SERVICE_PORTS_INCLUDE: servicePortsInclude(),
  };
  for (const [name, upstream] of Object.entries(upstreams)) vars[`${name}_UPSTREAM`] = upstream;
  const server = render(readFileSync(join(GATEWAY_DIR, 'gateway.conf.template'), 'utf8'), vars)
    .replace('listen 8080 default_server;', `listen ${host}:${port} default_server;`)
    .replace('listen 8081;', `listen ${host}:${statusPort};`)
    .replace('root /usr/share/nginx/html;', `root ${root};`);
  writeFileSync(join(dir, 'gateway.conf'), server);
  copyFileSync(join(GATEWAY_DIR, 'security-headers.conf'), join(dir, 'security-headers.conf'));
  const main = readFileSync(join(GATEWAY_DIR, 'nginx.conf'), 'utf8')
    .replaceAll('/tmp/', `${dir}/`)
    // Node's pipes are sockets, which /dev/stdout and /dev/stderr cannot be reopened on.
    .replace('access_log /dev/stdout gateway;', `access_log ${dir}/access.log gateway;`)
    .replace('error_log /dev/stderr notice;', `error_log ${dir}/error.log notice;`);
  writeFileSync(join(dir, 'nginx.conf'), main);
  const args = ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')];
  const check = spawnSync(nginx, [...args, '-t'], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`nginx -t failed:\n${check.stderr}`);
  const child = spawn(nginx, [...args, '-g', 'daemon off;'], { stdio: 'ignore' });
  await listening(host, port, child);
  return {
    url: `http://${host}:${port}`,
    statusUrl: `http://${host}:${statusPort}`,
    check: check.stderr,
    close: () => new Promise((done) => {
      const finish = () => { rmSync(dir, { recursive: true, force: true }); done(); };
      if (child.exitCode !== null) return finish();
      child.on('exit', finish);
      child.kill('SIGQUIT');
    }),
  };
}
