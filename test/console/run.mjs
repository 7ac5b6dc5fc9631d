// Browser test of the hub's web console (docs/console.md): Debian's chromium, headless, driven by
// playwright-core. Started by test/integration/console_test.cpp once its fleet runs:
//
//   node test/console/run.mjs HUB_URL TOKEN SCREENSHOT_DIR KILL_FILE PROBE_MANIFEST
//
// The fleet it expects: nodes n1 (site=east), n2 (site=west), n3 (ring=canary); workloads web
// (every node) and cache (2 replicas), all Running, and nothing else started since the hub
// did; device thermo-1 on n1 with desired {setpoint: 21}; rollout fw-2 Progressing on n3. TOKEN
// is an operator's. PROBE_MANIFEST is a workload `probe` on every node, applied while the
// overview is open (its startups must reach the latency plot). Writing KILL_FILE asks the test
// to kill -9 n2's agent. Exits 0 when every check passed, else 1 naming the first that failed.
import {chromium} from 'playwright-core';
import {writeFileSync, readFileSync, mkdirSync} from 'node:fs';

const [url, token, shots, killFile, probeFile] = process.argv.slice(2);
if (!url || !token || !shots || !killFile || !probeFile) {
  console.error('usage: node run.mjs HUB_URL TOKEN SCREENSHOT_DIR KILL_FILE PROBE_MANIFEST');
  process.exit(2);
}
const probe = readFileSync(probeFile, 'utf8');
mkdirSync(shots, {recursive: true});

const started = Date.now();
const log = (msg) => console.log(`[console +${((Date.now() - started) / 1000).toFixed(1)}s] ${msg}`);
function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
  log('ok: ' + what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let page;
let failed = false;
try {
  page = await browser.newPage({viewport: {width: 1280, height: 900}});
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const shot = async (name) => {
    const file = `${shots}/${name}.png`;
    await page.screenshot({path: file, fullPage: true});
    log('screenshot ' + file);
  };
  const text = (sel) => page.locator(sel).innerText();
  const go = async (hash, ready) => {
    await page.evaluate((h) => { location.hash = h; }, hash);
    await page.waitForSelector(ready, {timeout: 15000});
  };
  // A REST call from the page, with the operator's token: {status, body}.
  const rest = (method, path, body, type) => page.evaluate(async ([m, p, b, t, tok]) => {
    const headers = {Authorization: 'Bearer ' + tok};
    if (t) headers['Content-Type'] = t;
    const res = await fetch(p, {method: m, headers, body: b || undefined});
    return {status: res.status, body: await res.json()};
  }, [method, path, body || '', type || '', token]);

  // Without a token the API answers 401 and the console asks for one.
  await page.goto(url + '/#/overview');
  await page.waitForSelector('#token-dialog[open]', {timeout: 15000});
  check(/401/.test(await text('#token-why')), 'a 401 makes the console ask for a token');
  await shot('01-token');
  await page.fill('#token-input', token);
  await page.click('#token-save');

  // Overview: counts from /metrics, the arch table from a page of nodes.
  await page.waitForSelector('#node-cards', {timeout: 15000});
  const cards = await text('#node-cards');
  check(/Nodes Ready\s*3/.test(cards), `overview shows 3 Ready nodes (${cards.replace(/\s+/g, ' ')})`);
  check(/Workloads\s*2/.test(cards), 'overview shows 2 workloads');
  const overview = await text('main');
  check(/Running\s*5/.test(overview), 'overview shows 5 Running instances (web on 3 nodes, cache on 2)');
  check(/east\s*1/.test(overview) && /west\s*1/.test(overview), 'overview counts nodes by site label');
  // Startup latency: the hub timed the 5 instances' startups (web on 3 nodes, cache on 2).
  await page.waitForFunction(() => /5 instance startups/.test(document.getElementById('startup-total')?.textContent || ''),
                             null, {timeout: 15000});
  const total = await text('#startup-total');
  const p50 = Number((total.match(/p50 ([\d.]+) s/) || [])[1]);
  check(p50 > 0 && p50 < 60, `overview shows the startups' p50 since the hub started (${total})`);
  await shot('02-overview');
  // A new workload on every node while the overview is open: 3 more startups reach the plot.
  const applied = await rest('PUT', '/api/v1/workloads', probe, 'application/yaml');
  check(applied.status === 200, `workload probe applied (${applied.status} ${JSON.stringify(applied.body)})`);
  await page.waitForFunction(() => /8 instance startups/.test(document.getElementById('startup-total')?.textContent || '') &&
      document.querySelectorAll('#plot-startup .series[data-series="p99"]').length > 0, null, {timeout: 30000});
  const plotted = await text('#plot-startup');
  const now50 = Number((plotted.match(/p50 ([\d.]+)/) || [])[1]);
  check(now50 > 0 && now50 < 60, `the startup-latency plot shows the probe's startups live (${plotted.replace(/\s+/g, ' ')})`);
  await shot('02b-overview-startup-plot');

  // Node list, then the server-side label filter.
  await go('#/nodes', '#node-table');
  for (const n of ['n1', 'n2', 'n3']) {
    const state = await text(`tr[data-node="${n}"] td.state`);
    check(state === 'Ready', `node list shows ${n} Ready`);
  }
  check(/site=east/.test(await text('tr[data-node="n1"]')), 'node list shows n1\'s labels');
  await shot('03-nodes');
  await page.fill('#selector', 'site=east');
  await page.click('#filter button');
  await page.waitForFunction(() => location.hash.includes('labelSelector') &&
      document.querySelectorAll('#node-table tr[data-node]').length === 1, null, {timeout: 15000});
  check(await page.locator('tr[data-node="n1"]').count() === 1, 'labelSelector site=east lists only n1');

  // Node detail: labels, capacity, workloads, instances, devices, events.
  await go('#/nodes/n1', '#node-workloads');
  const n1 = await text('main');
  check(/site=east/.test(n1), 'node detail shows labels');
  check(/web/.test(await text('#node-workloads')), 'node detail lists workload web');
  check(/Running/.test(n1), 'node detail shows a Running instance');
  check(/thermo-1/.test(n1), 'node detail lists device thermo-1');
  check(/Capacity/.test(n1), 'node detail shows capacity');
  await shot('04-node-n1');

  // Workloads: instance counts per workload.
  await go('#/workloads', '#workload-table');
  check(await text('tr[data-workload="web"] td.desired') === '3', 'workload web wants 3 instances');
  check(await text('tr[data-workload="web"] td.ready') === '3', 'workload web has 3 ready');
  check(await text('tr[data-workload="cache"] td.desired') === '2', 'workload cache wants 2 instances');
  await shot('05-workloads');
  await go('#/workloads/web', '#instance-table');
  check(await page.locator('#instance-table tr').count() === 4, 'workload web shows one instance row per node');
  await shot('06-workload-web');

  // Device twin: desired, reported, delta.
  await go('#/devices', '#device-table');
  check(/thermo-1/.test(await text('#device-table')), 'device list shows thermo-1');
  await go('#/devices/thermo-1', '#delta');
  check(/"setpoint": 21/.test(await text('#desired')), 'device twin shows desired setpoint 21');
  check(/setpoint/.test(await text('#delta')), 'device twin shows the unreported setpoint in its delta');
  await shot('07-device');

  // Rollouts: the pause button changes the rollout in the API.
  await go('#/rollouts', '#rollout-table');
  check(await text('tr[data-rollout="fw-2"] td.phase') === 'Progressing', 'rollout fw-2 is listed Progressing');
  // Changed by someone else (the API, as flotctl would): the list follows without a reload.
  await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, {timeout: 10000});
  await page.evaluate(() => { window.notReloaded = 'rollouts'; });
  check((await rest('POST', '/api/v1/rollouts/fw-2/pause')).status === 200, 'fw-2 paused through the API');
  await page.waitForFunction(() => document.querySelector('tr[data-rollout="fw-2"] td.phase')?.textContent === 'Paused',
                             null, {timeout: 10000});
  check(await page.evaluate(() => window.notReloaded === 'rollouts'), 'the rollout list shows fw-2 Paused live, without a reload');
  check((await rest('POST', '/api/v1/rollouts/fw-2/resume')).status === 200, 'fw-2 resumed through the API');
  await page.waitForFunction(() => document.querySelector('tr[data-rollout="fw-2"] td.phase')?.textContent === 'Progressing',
                             null, {timeout: 10000});
  log('ok: the rollout list shows fw-2 Progressing again live');
  await go('#/rollouts/fw-2', '#pause');
  await shot('08-rollout-before');
  await page.click('#pause');
  await page.waitForFunction(() => document.getElementById('rollout-phase')?.textContent === 'Paused', null, {timeout: 15000});
  const api = await page.evaluate(async (t) => {
    const res = await fetch('/api/v1/rollouts/fw-2', {headers: {Authorization: 'Bearer ' + t}});
    return res.json();
  }, token);
  check(api.status.phase === 'Paused' && api.status.pausedReason === 'paused by the operator',
        `the API shows fw-2 Paused by the operator after the click (${api.status.phase}, ${api.status.pausedReason})`);
  await shot('09-rollout-paused');
  await page.click('#resume');
  await page.waitForFunction(() => document.getElementById('rollout-phase')?.textContent === 'Progressing', null, {timeout: 15000});
  log('ok: resume returns fw-2 to Progressing');
  // The detail page follows the rollout's watch too: a pause made elsewhere shows live.
  await page.evaluate(() => { window.notReloaded = 'detail'; });
  check((await rest('POST', '/api/v1/rollouts/fw-2/pause')).status === 200, 'fw-2 paused through the API again');
  await page.waitForFunction(() => document.getElementById('rollout-phase')?.textContent === 'Paused', null, {timeout: 10000});
  check(await page.evaluate(() => window.notReloaded === 'detail') && /paused by the operator/.test(await text('main')),
        'the rollout page shows fw-2 Paused live, without a reload');
  check((await rest('POST', '/api/v1/rollouts/fw-2/resume')).status === 200, 'fw-2 resumed through the API again');
  await page.waitForFunction(() => document.getElementById('rollout-phase')?.textContent === 'Progressing', null, {timeout: 10000});

  // Live: n2's agent is killed; its row turns NotReady without a reload. A second tab watches
  // the nodes page filtered to NotReady (chosen in the form): n2 must come to it.
  const tab = await browser.newPage({viewport: {width: 1280, height: 900}});
  tab.on('pageerror', (e) => errors.push(String(e)));
  // A context of its own: its own sessionStorage, given the token before the page loads.
  await tab.addInitScript((t) => sessionStorage.setItem('flotilla.token', t), token);
  await tab.goto(url + '/#/nodes');
  await tab.waitForSelector('#node-table', {timeout: 15000});
  await tab.selectOption('#state', 'NotReady');
  await tab.click('#filter button');
  await tab.waitForFunction(() => location.hash.includes('state=NotReady') && document.querySelector('#node-table') &&
      document.querySelectorAll('#node-table tr[data-node]').length === 0, null, {timeout: 15000});
  await tab.waitForFunction(() => document.getElementById('live').textContent === 'live', null, {timeout: 10000});
  log('ok: the NotReady filter lists no node while all are Ready');
  await go('#/nodes', '#node-table');
  check(await text('tr[data-node="n2"] td.state') === 'Ready', 'n2 is Ready before its agent is killed');
  await page.evaluate(() => { window.notReloaded = true; });
  await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, {timeout: 10000});
  writeFileSync(killFile, 'n2\n');
  log('asked the test to kill -9 n2');
  await page.waitForFunction(() => document.querySelector('tr[data-node="n2"] td.state')?.textContent === 'NotReady',
                             null, {timeout: 30000});
  check(await page.evaluate(() => window.notReloaded === true), 'n2 shows NotReady live, without a reload');
  await shot('10-n2-notready');
  await tab.waitForFunction(() => document.querySelectorAll('#node-table tr[data-node]').length === 1 &&
      document.querySelector('tr[data-node="n2"] td.state')?.textContent === 'NotReady', null, {timeout: 15000});
  log('ok: the NotReady filter lists n2 once it died, live');
  await tab.screenshot({path: `${shots}/10b-nodes-notready-filter.png`, fullPage: true});
  const filtered = await rest('GET', '/api/v1/nodes?state=NotReady');
  check(filtered.body.items.map((n) => n.name).join(',') === 'n2', 'the API lists only n2 with state=NotReady');
  await tab.close();
  await go('#/overview', '#node-cards');
  check(/Nodes NotReady\s*1/.test(await text('#node-cards')), 'overview counts 1 NotReady node');
  check(/n2/.test(await text('#alerts')), 'overview alerts name n2');
  await shot('11-overview-alert');
  check(errors.length === 0, 'no script errors in the page' + (errors.length ? ': ' + errors.join('; ') : ''));
  log('screenshots in ' + shots);
} catch (e) {
  failed = true;
  console.error(String(e && e.stack || e));
  if (page) {
    await page.screenshot({path: `${shots}/failure.png`, fullPage: true}).catch(() => {});
    console.error('page text at failure:\n' + await page.locator('body').innerText().catch(() => '?'));
    console.error('screenshots in ' + shots);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
