// waiting_page_test.mjs — the waiting page in a real browser (CTest: browser_waiting_page).
//
//   FLASHSALE_BIN=build/release/flashsale node waiting_page_test.mjs <output dir>
//
// Starts the real `flashsale serve` (embedded mode, a temp data dir, a free port on 127.0.0.1)
// on a seeded product whose waiting room admits 5 buyers a second from a start a few seconds
// ahead, puts 10 other users in the queue first, then drives headless Chromium (Debian's
// /usr/bin/chromium, or $CHROMIUM) through GET /waiting-room/<id>?user_id=<n>: the user id is
// prefilled, Join shows a position behind the 10, a reload resumes the same ticket without a
// click, and once admitted the page buys by itself and shows an order id, which GET /orders/{id}
// must know. Any console error or uncaught exception on the page fails the test. A screenshot
// of the final page goes to <output dir>/waiting_page.png (also on failure).
// Exit 0: passed; 1: failed. Every wait is bounded; the whole run takes about 10-15 s.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);  // puppeteer-core from the npm ci cache beside us
const puppeteer = require('puppeteer-core');

const bin = process.env.FLASHSALE_BIN;
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';
const outDir = process.argv[2] || '.';
const HOST = '127.0.0.1';
const PRODUCT = 9101;
const USER = 4242;
const AHEAD = 10;          // users who join before the browser's user
const ADMIT_PER_S = 5;
const START_IN_S = 6;      // the sale (and admission) starts this long after seeding
const BOUGHT_WITHIN_MS = 40_000;

let failures = 0;
const ok = (what) => console.log(`ok   ${what}`);
const fail = (what) => { console.log(`FAIL ${what}`); failures += 1; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, HOST, () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function http(method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method, signal: AbortSignal.timeout(5000),
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, type: res.headers.get('content-type'), text, json };
}

const work = mkdtempSync(join(tmpdir(), 'flashsale-browser-'));
const db = `sqlite:${join(work, 'flashsale.db')}`;
let server = null;
let base = '';
let browser = null;
let page = null;

async function main() {
  if (!bin) throw new Error('FLASHSALE_BIN is not set');
  mkdirSync(outDir, { recursive: true });

  // --- the product, seeded from a file ------------------------------------------------------
  const startsAt = new Date(Date.now() + START_IN_S * 1000);
  startsAt.setMilliseconds(0);
  const catalog = join(work, 'catalog.json');
  writeFileSync(catalog, JSON.stringify([{
    product_id: PRODUCT, price: 19.9, stock: 100, starts_at: startsAt.toISOString().replace('.000Z', 'Z'),
    limit_per_user: 1, waiting_room: { admit_per_s: ADMIT_PER_S, pass_ttl_s: 60 },
  }]));
  const seed = spawnSync(bin, ['seed', catalog, '--database', db], { cwd: work, encoding: 'utf8', timeout: 30_000 });
  if (seed.status !== 0) throw new Error(`flashsale seed exited ${seed.status}: ${seed.stdout}${seed.stderr}`);
  ok(`seeded product ${PRODUCT}: starts ${startsAt.toISOString()}, ${ADMIT_PER_S}/s admitted`);

  // --- the server ---------------------------------------------------------------------------
  const port = await freePort();
  base = `http://${HOST}:${port}`;
  const log = openSync(join(work, 'serve.out'), 'w');
  server = spawn(bin, ['serve', '--host', HOST, '--port', String(port), '--database', db,
    '--threads', '2', '--mock-products', '0', '--log-dir', join(work, 'logs'),
    '--waiting-room-secret', 'browser-test-waiting-room-secret-0123456789',
    '--queue-places-per-address', '0'],  // every test user comes from 127.0.0.1
  { cwd: work, stdio: ['ignore', log, log] });
  const upBy = Date.now() + 10_000;
  for (;;) {
    if (server.exitCode !== null) throw new Error(`flashsale serve exited ${server.exitCode}`);
    try { if ((await http('GET', '/healthz')).status === 200) break; } catch { /* not yet */ }
    if (Date.now() > upBy) throw new Error('flashsale serve did not answer /healthz within 10 s');
    await sleep(100);
  }
  ok(`flashsale serve on ${base}`);

  // The page route: any positive id is a page; anything else is 404.
  const pageResp = await http('GET', `/waiting-room/${PRODUCT}`);
  if (pageResp.status === 200 && /^text\/html/.test(pageResp.type) && pageResp.text.includes('order-id')) {
    ok(`GET /waiting-room/${PRODUCT}: 200 ${pageResp.type}`);
  } else fail(`GET /waiting-room/${PRODUCT}: ${pageResp.status} ${pageResp.type}`);
  for (const bad of ['0', '-1', 'abc', '007', '99999999999999999999']) {
    const r = await http('GET', `/waiting-room/${bad}`);
    if (r.status === 404 && r.json && r.json.status === 'UNKNOWN_PRODUCT') ok(`GET /waiting-room/${bad}: 404`);
    else fail(`GET /waiting-room/${bad}: ${r.status} ${r.text.slice(0, 200)}`);
  }

  // The product really is behind the room: without a pass there is nothing to buy.
  const noPass = await http('POST', '/purchase', { user_id: USER + 1, product_id: PRODUCT, amount: 1 });
  if (noPass.status === 403 && noPass.json && noPass.json.status === 'PASS_REQUIRED') ok('POST /purchase without a pass: 403 PASS_REQUIRED');
  else fail(`POST /purchase without a pass: ${noPass.status} ${noPass.text.slice(0, 200)}`);

  // Others take the first places, so the browser's user has to wait its turn.
  for (let u = 1; u <= AHEAD; u += 1) {
    const r = await http('POST', `/products/${PRODUCT}/queue`, { user_id: u });
    if (r.status !== 200) throw new Error(`user ${u} could not join: ${r.status} ${r.text}`);
  }
  ok(`${AHEAD} users joined before the browser`);

  // --- the browser --------------------------------------------------------------------------
  const args = ['--disable-gpu', '--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');  // root: no user namespaces
  browser = await puppeteer.launch({ executablePath: chromium, headless: true, args, timeout: 30_000 });
  page = await browser.newPage();
  await page.setViewport({ width: 720, height: 640 });
  const problems = [];
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()} ${JSON.stringify(m.location())}`); });
  page.on('pageerror', (e) => problems.push(`uncaught: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  ok(`${await browser.version()} (${chromium})`);

  const url = `${base}/waiting-room/${PRODUCT}?user_id=${USER}`;
  await page.goto(url, { waitUntil: 'load', timeout: 10_000 });
  const prefilled = await page.$eval('#user-id', (e) => e.value);
  if (prefilled === String(USER)) ok(`user id prefilled from ?user_id= (${prefilled})`);
  else fail(`user id field holds '${prefilled}', expected ${USER}`);

  await page.click('#join');
  await page.waitForFunction(() => document.getElementById('room').dataset.state === 'waiting' &&
    document.getElementById('position').textContent !== '-', { timeout: 5000 });
  const shown = await page.evaluate(() => ({
    position: document.getElementById('position').textContent,
    ahead: document.getElementById('ahead').textContent,
    wait: document.getElementById('wait').textContent,
  }));
  if (Number(shown.position) === AHEAD + 1 && Number(shown.ahead) === AHEAD && /\d/.test(shown.wait)) {
    ok(`waiting: position ${shown.position}, ${shown.ahead} ahead, wait ${shown.wait}`);
  } else fail(`waiting shows ${JSON.stringify(shown)}, expected position ${AHEAD + 1} with ${AHEAD} ahead`);
  await page.screenshot({ path: join(outDir, 'waiting_page_queued.png') });

  // A reload resumes the same place, without a click.
  const key = `flashsale.waiting-room.${PRODUCT}`;
  const ticket = await page.evaluate((k) => JSON.parse(localStorage.getItem(k)).ticket, key);
  await page.reload({ waitUntil: 'load', timeout: 10_000 });
  const resumed = await page.evaluate((k) => ({
    ticket: JSON.parse(localStorage.getItem(k) || '{}').ticket,
    formHidden: document.getElementById('join-form').hidden,
    state: document.getElementById('room').dataset.state,
  }), key);
  if (resumed.ticket === ticket && resumed.formHidden && ['waiting', 'admitted', 'bought'].includes(resumed.state)) {
    ok(`reload resumed the same ticket (state ${resumed.state})`);
  } else fail(`after a reload: ${JSON.stringify(resumed)}, ticket before ${ticket}`);

  // Admission, then the purchase the page makes by itself.
  await page.waitForFunction(() => ['bought', 'refused', 'sold-out', 'expired', 'error']
    .includes(document.getElementById('room').dataset.state), { timeout: BOUGHT_WITHIN_MS, polling: 100 });
  const final = await page.evaluate(() => ({
    state: document.getElementById('room').dataset.state,
    order: document.getElementById('order-id').textContent,
    message: document.getElementById('message').textContent,
  }));
  await page.screenshot({ path: join(outDir, 'waiting_page.png') });
  if (final.state === 'bought' && final.order) ok(`admitted and bought: order ${final.order}`);
  else throw new Error(`the page ended in ${JSON.stringify(final)}`);

  const order = await http('GET', `/orders/${encodeURIComponent(final.order)}`);
  const o = order.json || {};
  if (order.status === 200 && Number(o.user_id) === USER && Number(o.product_id) === PRODUCT) {
    ok(`GET /orders/${final.order}: user ${o.user_id}, product ${o.product_id}, ${o.status}`);
  } else fail(`GET /orders/${final.order}: ${order.status} ${order.text.slice(0, 300)}`);

  if (problems.length === 0) ok('no console error, uncaught exception or failed request on the page');
  for (const p of problems) fail(p);
}

async function cleanup() {
  if (page && failures > 0) await page.screenshot({ path: join(outDir, 'waiting_page.png') }).catch(() => {});
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) {
    server.kill('SIGTERM');
    const code = await Promise.race([new Promise((r) => server.once('exit', (c) => r(c))), sleep(15_000).then(() => 'timeout')]);
    if (code === 0) ok('flashsale serve stopped (exit 0)');
    else { fail(`flashsale serve on SIGTERM: ${code}`); server.kill('SIGKILL'); }
  }
  if (failures > 0) {
    try { console.log(`--- server output ---\n${readFileSync(join(work, 'serve.out'), 'utf8').slice(-4000)}`); } catch { /* none */ }
  }
  rmSync(work, { recursive: true, force: true });
}

try {
  await main();
} catch (e) {
  fail(e && e.stack ? e.stack : String(e));
}
await cleanup();
console.log(`waiting page: ${failures === 0 ? 'passed' : `${failures} failed`}`);
process.exit(failures === 0 ? 0 : 1);
