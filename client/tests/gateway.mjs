/**
 * A stand-in for the gateway, for the tests only: it serves client/ and proxies
 * /inventory/…, /pricing/…, /order/… to the services with the prefix stripped,
 * which is all the contract asks of the real one. It lets the tests check that
 * the page works same-origin, through prefixes, as it does behind the gateway.
 */

import { createReadStream, statSync } from 'node:fs';
import { createServer, request as httpRequest } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.json': 'application/json',
};

function problem(res, status, title, detail) {
  res.writeHead(status, { 'content-type': 'application/problem+json' });
  res.end(JSON.stringify({ type: 'about:blank', title, status, detail, code: 'bad_gateway' }));
}

function serveFile(root, req, res) {
  const path = decodeURIComponent(new URL(req.url, 'http://gateway').pathname);
  const file = normalize(join(root, path === '/' ? 'index.html' : path));
  if (!file.startsWith(root + sep)) return problem(res, 404, 'Not Found', 'No such file.');
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
  } catch {
    return problem(res, 404, 'Not Found', 'No such file.');
  }
  res.writeHead(200, { 'content-type': TYPES[extname(file)] || 'application/octet-stream' });
  return createReadStream(file).pipe(res);
}

function proxy(upstream, path, req, res) {
  const target = new URL(path, upstream);
  const outgoing = httpRequest(target, {
    method: req.method,
    headers: { ...req.headers, host: target.host },
  }, (answer) => {
    res.writeHead(answer.statusCode, answer.headers);
    answer.pipe(res);
  });
  outgoing.on('error', () => problem(res, 502, 'Bad Gateway', `The service behind ${target.origin} did not answer.`));
  req.pipe(outgoing);
}

/**
 * Starts the gateway on `host:port` (port 0 picks one). `upstreams` maps a prefix
 * ("inventory") to a base URL. Resolves to `{ url, close }`.
 */
export function startGateway({ host = '127.0.0.1', port = 0, root, upstreams }) {
  const server = createServer((req, res) => {
    const match = /^\/([a-z]+)(\/.*)?$/.exec(req.url);
    if (match && upstreams[match[1]]) {
      return proxy(upstreams[match[1]], match[2] || '/', req, res);
    }
    return serveFile(root, req, res);
  });
  return new Promise((resolve, reject) => {
    server.on('error', reject);
    server.listen(port, host, () => {
      resolve({
        url: `http://${host}:${server.address().port}`,
        close: () => new Promise((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}
