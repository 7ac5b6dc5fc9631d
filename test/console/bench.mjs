// Web console benchmark over a large simulated fleet (not a test): Debian's chromium, headless,
// driven by playwright-core, against a hub whose fleet flotilla-fleetsim --mode console holds.
// Started by `bench/run console` once the fleet runs:
//
//   node test/console/bench.mjs HUB_URL CONTROL_FILE NODES [OFFLINE_COUNT]
//
// Measures: time to first render of the overview and of the nodes page, time to the next page,
// time from a node's agent dying (written to CONTROL_FILE as "offline NAME": the simulator
// publishes its will) until its row on the open nodes page says NotReady, and until it shows on
// a second page filtered to state=NotReady; the page's JS heap (Chrome DevTools Protocol). Prints
// a Markdown table (rows "| what | value |") on stdout, progress on stderr. Exits 1 when a wait
// timed out.
import {chromium} from 'playwright-core';
import {appendFileSync} from 'node:fs';

const [url, control, nodesText, offlineText] = process.argv.slice(2);
if (!url || !control || !nodesText) {
  console.error('usage: node bench.mjs HUB_URL CONTROL_FILE NODES [OFFLINE_COUNT]');
  process.exit(2);
}
const nodes = Number(nodesText);
const offlineCount = Number(offlineText || 5);
const log = (m) => console.error(`[console-bench] ${m}`);
const rows = [];
const row = (what, value) => { rows.push(`| ${what} | ${value} |`); log(`${what}: ${value}`); };
const ms = (t0) => Date.now() - t0;
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
let failed = false;
try {
  const page = await browser.newPage({viewport: {width: 1280, height: 900}});
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Performance.enable');
  const heapMiB = async () => {
    await cdp.send('HeapProfiler.collectGarbage').catch(() => {});
    const {metrics} = await cdp.send('Performance.getMetrics');
    const used = metrics.find((m) => m.name === 'JSHeapUsedSize').value;
    const total = metrics.find((m) => m.name === 'JSHeapTotalSize').value;
    return `${(used / 1048576).toFixed(1)} MiB used / ${(total / 1048576).toFixed(1)} MiB allocated`;
  };

  // Overview: cards (from /metrics), the 1,000-node sample, alerts, then the plots' first sample.
  let t0 = Date.now();
  await page.goto(url + '/#/overview');
  await page.waitForSelector('#node-cards', {timeout: 60000});
  row('overview: navigation → cards, tables and alerts drawn', `${ms(t0)} ms`);
  await page.waitForFunction((n) => new RegExp(`Nodes Ready\\s*${n}`).test(document.getElementById('node-cards')?.innerText || ''),
                             nodes, {timeout: 60000});
  // The line follows the plots' first sample of /metrics, after the cards.
  await page.waitForFunction(() => (document.getElementById('startup-total')?.innerText || '').trim() !== '',
                             null, {timeout: 30000}).catch(() => {});
  const startup = await page.locator('#startup-total').innerText();
  row('overview: startup latency line', startup.replace(/\. The plot.*/, ''));
  row('overview: JS heap', await heapMiB());

  // Nodes page, then the next page (a continue token).
  t0 = Date.now();
  await page.evaluate(() => { location.hash = '#/nodes'; });
  await page.waitForFunction(() => document.querySelectorAll('#node-table tr[data-node]').length === 100, null, {timeout: 60000});
  row('nodes page: hash change → 100 rows drawn', `${ms(t0)} ms`);
  const first = await page.locator('#node-table tr[data-node]').first().getAttribute('data-node');
  t0 = Date.now();
  await page.click('#next');
  await page.waitForFunction((f) => {
    const r = document.querySelectorAll('#node-table tr[data-node]');
    return r.length === 100 && r[0].getAttribute('data-node') !== f;
  }, first, {timeout: 60000});
  row('nodes page: click next → next 100 rows drawn', `${ms(t0)} ms`);
  await page.waitForFunction(() => document.getElementById('live').textContent === 'live', null, {timeout: 30000});

  // A second tab on the nodes filtered to NotReady (by the hub).
  const tab = await browser.newPage({viewport: {width: 1280, height: 900}});
  t0 = Date.now();
  await tab.goto(url + '/#/nodes?state=NotReady');
  await tab.waitForSelector('#node-table', {timeout: 60000});
  await tab.waitForFunction(() => document.getElementById('live').textContent === 'live', null, {timeout: 30000});
  const before = await tab.locator('#node-table tr[data-node]').count();
  row(`nodes page filtered state=NotReady: navigation → drawn (${before} NotReady)`, `${ms(t0)} ms`);

  // Agents die one by one: time until the open page shows each NotReady, and the filtered tab.
  const names = await page.locator('#node-table tr[data-node]').evaluateAll((rs) => rs.map((r) => r.getAttribute('data-node')));
  const onPage = [], onFilter = [];
  for (let i = 0; i < offlineCount; i++) {
    const name = names[10 + i * 7];
    t0 = Date.now();
    appendFileSync(control, `offline ${name}\n`);
    await page.waitForFunction((n) => document.querySelector(`tr[data-node="${n}"] td.state`)?.textContent === 'NotReady',
                               name, {timeout: 240000});
    onPage.push(ms(t0));
    await tab.waitForFunction((n) => document.querySelector(`tr[data-node="${n}"] td.state`)?.textContent === 'NotReady',
                              name, {timeout: 240000});
    onFilter.push(ms(t0));
    log(`${name}: NotReady on the page after ${onPage[i]} ms, on the filtered tab after ${onFilter[i]} ms`);
    await new Promise((r) => setTimeout(r, 1500));
  }
  row(`agent dies (will published) → its row NotReady on the open page, ${offlineCount} nodes one after another: each`,
      onPage.map((x) => `${x} ms`).join(', '));
  row(`… median / max`, `${median(onPage)} / ${Math.max(...onPage)} ms`);
  row(`… → the node listed on the state=NotReady tab: median / max`, `${median(onFilter)} / ${Math.max(...onFilter)} ms`);
  row('nodes page: JS heap after the watch events', await heapMiB());

  // Back to the overview: its alerts name the dead nodes (the hub's state filter, whole fleet).
  t0 = Date.now();
  await page.evaluate(() => { location.hash = '#/overview'; });
  await page.waitForFunction((n) => (document.getElementById('alerts')?.innerText || '').includes(n), names[10], {timeout: 60000});
  row('overview again: hash change → alerts naming the NotReady nodes', `${ms(t0)} ms`);
  row('overview: JS heap', await heapMiB());
  row('script errors in the page', errors.length ? errors.join('; ') : 'none');
} catch (e) {
  failed = true;
  console.error(String(e && e.stack || e));
  // What the pages and the hub said at the failure.
  for (const p of browser.contexts().flatMap((c) => c.pages())) {
    console.error('page', await p.evaluate(() => location.hash + ' live=' + document.getElementById('live').textContent).catch(() => '?'));
  }
  const m = await fetch(url + '/metrics').then((r) => r.text()).catch(() => '');
  console.error(m.split('\n').filter((l) => /watch|feeder|nodes\{/.test(l)).join('\n'));
} finally {
  await browser.close();
}
console.log('| console measurement | value |\n|---|---|\n' + rows.join('\n'));
process.exit(failed ? 1 : 0);
