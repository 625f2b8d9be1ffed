// The peer of bench/archive_vs_node.py: the approach of shared/background/003 — Node's
// `archiver` (zip-stream) piping stored files into the HTTP response, no compression.
//   node server.js ROOT [PORT]    GET /archive?dir=FOLDER streams FOLDER's files as a ZIP
'use strict';
const http = require('http');
const fs = require('fs');
const path = require('path');
const archiver = require('archiver');

const root = path.resolve(process.argv[2]);
const port = Number(process.argv[3] || 0);

const server = http.createServer((req, res) => {
  const url = new URL(req.url, 'http://localhost');
  const dir = path.join(root, url.searchParams.get('dir') || '');
  if (url.pathname !== '/archive' || !dir.startsWith(root)) {
    res.writeHead(404).end();
    return;
  }
  const names = fs.readdirSync(dir).sort();
  res.writeHead(200, {
    'Content-Type': 'application/zip',
    'Content-Disposition': 'attachment; filename="archive.zip"',
  });
  const zip = archiver('zip', { store: true });
  zip.on('error', (error) => res.destroy(error));
  res.on('close', () => zip.abort());
  zip.pipe(res);
  // file() opens each file lazily, when its turn comes (20,000 files at once would exhaust fds).
  for (const name of names) zip.file(path.join(dir, name), { name });
  zip.finalize();
});
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
