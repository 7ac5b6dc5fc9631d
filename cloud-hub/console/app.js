// Flotilla web console (docs/console.md): plain JavaScript, no build step. It reads the hub's
// REST API with the same bearer tokens as flotctl (kept in sessionStorage) and follows the
// watch streams. Lists are always read a page at a time (limit + continue), never whole.
'use strict';

const PAGE = 100;
const main = document.getElementById('main');
const live = document.getElementById('live');
let pageAbort = new AbortController();  // aborted when the page changes: its watches end
let pageTimers = [];

// ---- API ------------------------------------------------------------------------------------

function token() { return sessionStorage.getItem('flotilla.token') || ''; }

function headers() {
  const h = {};
  if (token()) h.Authorization = 'Bearer ' + token();
  return h;
}

let tokenWaiters = null;
// Asks for a token (once for all callers waiting); resolves when one was entered.
function askToken(why) {
  if (!tokenWaiters) {
    tokenWaiters = [];
    document.getElementById('token-why').textContent = why;
    const dialog = document.getElementById('token-dialog');
    document.getElementById('token-input').value = '';
    if (!dialog.open) dialog.showModal();
  }
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

document.getElementById('token-form').addEventListener('submit', () => {
  sessionStorage.setItem('flotilla.token', document.getElementById('token-input').value.trim());
  const waiters = tokenWaiters || [];
  tokenWaiters = null;
  waiters.forEach((w) => w());
});
document.getElementById('token-button').addEventListener('click', () => {
  askToken('API token for this tab (flotctl token create NAME --role viewer|operator).')
    .then(route);
});

// fetch() with the token; a 401 asks for a token and tries again. Resolves to parsed JSON (or
// text for non-JSON answers); rejects with the hub's {"error": ...} message.
async function api(path, options = {}) {
  for (;;) {
    const res = await fetch(path, {...options, headers: {...headers(), ...(options.headers || {})}});
    if (res.status === 401) {
      await askToken('The hub answered 401: enter an API token (flotctl token create NAME --role viewer).');
      continue;
    }
    const type = res.headers.get('Content-Type') || '';
    const body = type.includes('json') ? await res.json() : await res.text();
    if (!res.ok) throw new Error((body && body.error) || ('HTTP ' + res.status));
    return body;
  }
}

// Follows `path` (a ?watch=true URL) from resourceVersion `version`: onEvent({type, object}) per
// change. EventSource cannot send the Authorization header, so the stream is read with fetch().
// Reconnects from the last id; on 410 (expired) calls onExpired() (list again) and stops.
async function watch(path, version, onEvent, onExpired) {
  const signal = pageAbort.signal;
  let last = version;
  while (!signal.aborted) {
    try {
      const sep = path.includes('?') ? '&' : '?';
      const url = path + sep + 'watch=true' + (last ? '&resourceVersion=' + encodeURIComponent(last) : '');
      const res = await fetch(url, {headers: headers(), signal});
      if (res.status === 401) { await askToken('The watch stream needs an API token.'); continue; }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      live.textContent = 'live';
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        const {value, done} = await reader.read();
        if (done) break;
        buf += decoder.decode(value, {stream: true});
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          let data = '', id = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('data:')) data += line.slice(5).trim();
            else if (line.startsWith('id:')) id = line.slice(3).trim();
          }
          if (id) last = id;
          if (!data) continue;
          const ev = JSON.parse(data);
          if (ev.type === 'ERROR') {
            live.textContent = 'relisting';
            if (onExpired) onExpired();
            return;
          }
          onEvent(ev);
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      live.textContent = 'reconnecting';
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// ---- helpers --------------------------------------------------------------------------------

function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]));
}
function cls(prefix, v) { return esc(prefix + '-' + String(v ?? '').replace(/[^A-Za-z]/g, '')); }
function labels(l) { return Object.entries(l || {}).map(([k, v]) => esc(k + '=' + v)).join(', '); }
function link(kind, name) { return `<a href="#/${kind}/${encodeURIComponent(name)}">${esc(name)}</a>`; }
function table(head, rows, attrs = '') {
  return `<table ${attrs}><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>${rows.join('')}</table>`;
}
function json(v) { return `<pre>${esc(JSON.stringify(v, null, 2))}</pre>`; }
function every(ms, fn) { pageTimers.push(setInterval(fn, ms)); }

// Prometheus text into {name: [{labels, value}]}.
function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{([^}]*)\})?\s+(\S+)/);
    if (!m) continue;
    const l = {};
    (m[3] || '').replace(/(\w+)="([^"]*)"/g, (_, k, v) => { l[k] = v; });
    (out[m[1]] = out[m[1]] || []).push({labels: l, value: Number(m[4])});
  }
  return out;
}
function metricSum(ms, name) { return (ms[name] || []).reduce((s, x) => s + x.value, 0); }

// A paged list: `query` of the current page; prev/next via the continue tokens seen so far.
// `state` (nodes only): Ready or NotReady, filtered by the hub.
function pagedQuery() {
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  return {selector: q.get('labelSelector') || '', state: q.get('state') || '', cont: q.get('continue') || ''};
}
// The list's filter parameters (labelSelector, state) as a query string, '' when none.
function filterParams(q) {
  const p = new URLSearchParams();
  if (q.selector) p.set('labelSelector', q.selector);
  if (q.state) p.set('state', q.state);
  return p.toString();
}
function listUrl(base, q) {
  const p = new URLSearchParams(filterParams(q));
  p.set('limit', String(PAGE));
  if (q.cont) p.set('continue', q.cont);
  return base + (base.includes('?') ? '&' : '?') + p.toString();
}
function pagerHtml(kind, q, next) {
  const to = (cont) => {
    const p = new URLSearchParams(filterParams(q));
    if (cont) p.set('continue', cont);
    return `#/${kind}?${p.toString()}`;
  };
  const states = kind === 'nodes' ? ` state <select id="state">${['', 'Ready', 'NotReady'].map((s) =>
    `<option value="${s}"${s === q.state ? ' selected' : ''}>${s || 'any'}</option>`).join('')}</select>` : '';
  return `<div class="pager">
    <form id="filter">labelSelector <input type="text" id="selector" value="${esc(q.selector)}" placeholder="k=v,k2=v2">${states}
    <button type="submit">Filter</button></form>
    ${q.cont ? `<a href="${to('')}" id="first">◀ first page</a>` : ''}
    ${next ? `<a href="${to(next)}" id="next">next ▶</a>` : ''}
    <span class="muted">${PAGE} a page</span></div>`;
}
function bindFilter(kind) {
  const f = document.getElementById('filter');
  if (!f) return;
  f.addEventListener('submit', (e) => {
    e.preventDefault();
    const state = document.getElementById('state');
    const p = filterParams({selector: document.getElementById('selector').value.trim(), state: state ? state.value : ''});
    location.hash = `#/${kind}` + (p ? '?' + p : '');
  });
}
// Runs fn at most once per `ms` however often it is asked for (a burst of watch events).
function throttled(ms, fn) {
  let pending = null;
  return () => {
    if (!pending) pending = setTimeout(() => { pending = null; fn(); }, ms);
  };
}

// ---- pages ----------------------------------------------------------------------------------

const ingest = [];  // [{t, handled, startup}] samples of /metrics while the overview is open
const STARTUP = 'flotilla_hub_instance_startup_seconds';
const WINDOW = 30;  // samples (2 s apart) over which the startup-latency quantiles are taken

// A Prometheus histogram's cumulative buckets, [{le, count}] by le (Infinity last).
function histogram(ms, name) {
  const byLe = {};
  for (const x of ms[name + '_bucket'] || []) {
    const le = x.labels.le === '+Inf' ? Infinity : Number(x.labels.le);
    byLe[le] = (byLe[le] || 0) + x.value;
  }
  return Object.keys(byLe).map(Number).sort((a, b) => a - b).map((le) => ({le, count: byLe[le]}));
}
// The q-quantile of the observations between two samples of a histogram (later minus earlier),
// interpolated within its bucket as Prometheus' histogram_quantile does; null when none.
function quantile(q, now, before) {
  const counts = now.map((b, i) => b.count - ((before && before[i]) ? before[i].count : 0));
  const total = counts.length ? counts[counts.length - 1] : 0;
  if (total <= 0) return null;
  const rank = q * total;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] >= rank) {
      const lo = i ? now[i - 1].le : 0, prev = i ? counts[i - 1] : 0;
      if (now[i].le === Infinity) return lo;  // above every bound: the largest bound
      return lo + (now[i].le - lo) * (rank - prev) / Math.max(1, counts[i] - prev);
    }
  }
  return null;
}
function seconds(v) { return v === null ? '–' : v < 10 ? v.toFixed(2) + ' s' : v.toFixed(0) + ' s'; }

async function overview() {
  const [metricsText, sample, notReadyPage, rollouts] = await Promise.all([
    api('/metrics'), api('/api/v1/nodes?limit=1000'), api('/api/v1/nodes?state=NotReady&limit=100'),
    api('/api/v1/rollouts').catch(() => ({items: []}))]);
  const ms = parseMetrics(metricsText);
  const byState = {};
  for (const x of ms.flotilla_hub_nodes || []) byState[x.labels.state] = x.value;
  const phases = (ms.flotilla_hub_instances || []).filter((x) => x.value > 0);
  const arch = {}, site = {};
  for (const n of sample.items) {
    arch[n.arch || '?'] = (arch[n.arch || '?'] || 0) + 1;
    const s = (n.labels || {}).site;
    if (s) site[s] = (site[s] || 0) + 1;
  }
  const sampled = sample.continue ? ` (of the first ${sample.items.length} nodes by name)` : '';
  // NotReady nodes of the whole fleet, filtered by the hub: the first 100 by name, then a count.
  const notReady = notReadyPage.items;
  const moreNotReady = notReadyPage.continue ? Math.max(0, (byState.NotReady || 0) - notReady.length) : 0;
  const badRollouts = (rollouts.items || []).filter((r) => ['Paused', 'Aborted'].includes(r.status.phase) || r.status.counts.failed > 0);
  const card = (title, n, c = '') => `<div class="card"><div class="muted">${esc(title)}</div><div class="n ${c}">${esc(n)}</div></div>`;
  main.innerHTML = `<h1>Fleet overview</h1>
    <div class="cards" id="node-cards">
      ${card('Nodes Ready', byState.Ready ?? 0, 'state-Ready')}
      ${card('Nodes NotReady', byState.NotReady ?? 0, byState.NotReady ? 'state-NotReady' : '')}
      ${card('Workloads', metricSum(ms, 'flotilla_hub_workloads'))}
      ${card('Pending instances', metricSum(ms, 'flotilla_hub_pending_instances'))}
    </div>
    <h2>Alerts</h2><div id="alerts">
      ${notReady.map((n) => `<div class="alert">Node ${link('nodes', n.name)} is <span class="state-NotReady">NotReady</span> (last seen ${esc(n.lastSeenSecondsAgo)} s ago)</div>`).join('')}
      ${notReadyPage.continue ? `<div class="alert"><a href="#/nodes?state=NotReady" id="more-not-ready">${moreNotReady || 'more'} more NotReady nodes</a></div>` : ''}
      ${badRollouts.map((r) => `<div class="alert">Rollout ${link('rollouts', r.metadata.name)} is <span class="${cls('phase', r.status.phase)}">${esc(r.status.phase)}</span>${r.status.pausedReason ? ': ' + esc(r.status.pausedReason) : ''} (${r.status.counts.failed} failed)</div>`).join('')}
      ${!notReady.length && !badRollouts.length ? '<p class="muted">none</p>' : ''}
    </div>
    <h2>Instances by phase</h2>${table(['Phase', 'Instances'], phases.map((x) => `<tr><td class="${cls('phase', x.labels.phase)}">${esc(x.labels.phase)}</td><td>${x.value}</td></tr>`))}
    <h2>Nodes by arch${esc(sampled)}</h2>${table(['Arch', 'Nodes'], Object.entries(arch).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`))}
    <h2>Nodes by site label${esc(sampled)}</h2>${Object.keys(site).length ? table(['Site', 'Nodes'], Object.entries(site).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${v}</td></tr>`)) : '<p class="muted">no node has a site label</p>'}
    <h2>Ingest rate (messages handled per second)</h2><div id="plot-ingest"></div>
    <h2>Instance startup latency (apply accepted → instance Running)</h2>
    <p id="startup-total" class="muted"></p><div id="plot-startup"></div>`;
  const sampleMetrics = async () => {
    const m = parseMetrics(await api('/metrics'));
    ingest.push({t: Date.now() / 1000, handled: metricSum(m, 'flotilla_hub_messages_handled_total'), startup: histogram(m, STARTUP)});
    while (ingest.length > 120) ingest.shift();
    const rates = [], p50 = [], p99 = [];
    for (let i = 1; i < ingest.length; i++) {
      rates.push((ingest[i].handled - ingest[i - 1].handled) / Math.max(0.001, ingest[i].t - ingest[i - 1].t));
      // Startups of the last WINDOW samples (about a minute): none, no point.
      const before = ingest[Math.max(0, i - WINDOW)].startup;
      p50.push(quantile(0.5, ingest[i].startup, before));
      p99.push(quantile(0.99, ingest[i].startup, before));
    }
    const el = document.getElementById('plot-ingest');
    if (el) el.innerHTML = plot([{values: rates, color: '#2f7ed8', name: ''}], 'msg/s');
    const last = ingest[ingest.length - 1].startup;
    const total = last.length ? last[last.length - 1].count : 0;
    const t = document.getElementById('startup-total');
    if (t) {
      t.textContent = `since the hub started: ${total} instance startups` +
        (total ? `, p50 ${seconds(quantile(0.5, last, null))}, p99 ${seconds(quantile(0.99, last, null))}` : '') +
        `. The plot: p50 and p99 of the startups in the last minute.`;
    }
    const sp = document.getElementById('plot-startup');
    if (sp) sp.innerHTML = plot([{values: p50, color: '#17803d', name: 'p50'}, {values: p99, color: '#c62828', name: 'p99'}], 's');
  };
  await sampleMetrics();
  every(2000, () => sampleMetrics().catch(() => {}));
  // Node and rollout changes redraw the page (at most every 3 s: a redraw reads /metrics and a
  // page of 1,000 nodes): a node going NotReady shows without a reload.
  const redraw = throttled(3000, () => { if (location.hash.startsWith('#/overview') || !location.hash) route(); });
  watch('/api/v1/nodes', sample.resourceVersion, redraw);
  if (rollouts.resourceVersion) watch('/api/v1/rollouts', rollouts.resourceVersion, redraw);
}

// A line plot of `series` ([{values, color, name}], values may hold nulls: gaps) as inline SVG.
function plot(series, unit) {
  const n = Math.max(0, ...series.map((s) => s.values.length));
  const all = series.flatMap((s) => s.values).filter((v) => v !== null);
  if (n < 2 || !all.length) return '<p class="muted">collecting samples…</p>';
  const w = 480, h = 120, max = Math.max(unit === 's' ? 0.001 : 1, ...all);
  const x = (i) => (i * w / (n - 1)).toFixed(1), y = (v) => (h - v * h / max).toFixed(1);
  const lines = series.map((s) => {
    // One polyline per run of values without a gap; a lone point is a dot.
    const runs = [];
    let run = [];
    s.values.forEach((v, i) => {
      if (v === null) { if (run.length) runs.push(run); run = []; } else run.push(`${x(i)},${y(v)}`);
    });
    if (run.length) runs.push(run);
    return runs.map((r) => r.length > 1 ? `<polyline class="series" data-series="${esc(s.name)}" fill="none" stroke="${s.color}" stroke-width="2" points="${r.join(' ')}"/>`
      : `<circle class="series" data-series="${esc(s.name)}" r="2.5" fill="${s.color}" cx="${r[0].split(',')[0]}" cy="${r[0].split(',')[1]}"/>`).join('');
  }).join('');
  const now = series.map((s) => {
    const v = s.values[s.values.length - 1];
    return `${esc(s.name)} ${v === null ? '–' : v.toFixed(v < 10 ? 2 : 1)}`;
  }).join(' · ');
  return `<svg class="plot" width="${w}" height="${h + 20}" viewBox="0 -10 ${w} ${h + 20}">${lines}
    <text x="4" y="4" font-size="11">${max.toFixed(max < 10 ? 2 : 1)} ${esc(unit)}</text>
    <text x="4" y="${h + 8}" font-size="11">now ${now} ${esc(unit)}</text></svg>`;
}

function nodeRow(n) {
  return `<tr data-node="${esc(n.name)}"><td>${link('nodes', n.name)}</td><td class="state ${cls('state', n.state)}">${esc(n.state)}</td>
    <td>${esc(n.arch)}</td><td>${labels(n.labels)}</td><td>${esc((n.workloads || []).join(', '))}</td><td>${esc(n.instances)}</td><td>${esc(n.lastSeenSecondsAgo)}</td></tr>`;
}

async function nodes() {
  const q = pagedQuery();
  const page = await api(listUrl('/api/v1/nodes', q));
  main.innerHTML = `<h1>Nodes</h1>${pagerHtml('nodes', q, page.continue)}
    ${table(['Name', 'State', 'Arch', 'Labels', 'Workloads', 'Instances', 'Last seen (s)'], page.items.map(nodeRow), 'id="node-table"')}`;
  bindFilter('nodes');
  const shown = new Set(page.items.map((n) => n.name));
  // With a state filter a node that comes to the state (ADDED) may belong on this page: the page
  // is read again (at most once a second). One that leaves it (DELETED) goes at once.
  const relist = throttled(1000, () => { if (location.hash.startsWith('#/nodes')) route(); });
  const filter = filterParams(q);
  watch('/api/v1/nodes' + (filter ? '?' + filter : ''), page.resourceVersion, (ev) => {
    const n = ev.object;
    if (!shown.has(n.name)) {
      // Another page's node, unless a filtered page's range takes it.
      if (q.state && ev.type === 'ADDED' && (!page.continue || n.name < page.items[page.items.length - 1].name)) relist();
      return;
    }
    const row = main.querySelector(`tr[data-node="${CSS.escape(n.name)}"]`);
    if (!row) return;
    if (ev.type === 'DELETED') { row.remove(); shown.delete(n.name); return; }
    row.outerHTML = nodeRow(n);
  }, route);
}

async function nodeDetail(name) {
  const render = async () => {
    const [n, events, devices] = await Promise.all([
      api('/api/v1/nodes/' + encodeURIComponent(name)),
      api('/api/v1/events?limit=20&node=' + encodeURIComponent(name)),
      api('/api/v1/devices?limit=100&node=' + encodeURIComponent(name))]);
    const inst = n.instanceStatus || [];
    main.innerHTML = `<h1>Node ${esc(n.name)} <span id="node-state" class="${cls('state', n.state)}">${esc(n.state)}</span></h1>
      <p>arch ${esc(n.arch)} · shard ${esc(n.shard)} · last seen ${esc(n.lastSeenSecondsAgo)} s ago · revision ${esc(n.revision)} (acked ${esc(n.ackedRevision)}) · runtimes ${esc((n.runtimes || []).join(', '))}</p>
      <h2>Labels</h2><p>${labels(n.labels) || '<span class="muted">none</span>'}</p>
      <h2>Taints</h2><p>${(n.taints || []).map((t) => esc(`${t.key}=${t.value}:${t.effect}`)).join(', ') || '<span class="muted">none</span>'}</p>
      <h2>Capacity</h2>${table(['Resource', 'Capacity'], Object.entries(n.capacity || {}).map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`))}
      <h2>Workloads</h2><p id="node-workloads">${(n.workloads || []).map((w) => link('workloads', w)).join(', ') || '<span class="muted">none</span>'}</p>
      <h2>Instances</h2>${table(['Workload', 'Instance', 'Phase', 'Ready', 'Restarts', 'Reason'], inst.map((i) =>
        `<tr><td>${link('workloads', i.workload)}</td><td>${esc(i.instanceId)}</td><td class="${cls('phase', i.phase)}">${esc(i.phase)}</td><td>${esc(i.ready)}</td><td>${esc(i.restarts)}</td><td>${esc(i.reason || i.message)}</td></tr>`))}
      <h2>Devices</h2>${table(['Device', 'Desired v', 'Reported v', 'Delta'], devices.items.map((d) =>
        `<tr><td>${link('devices', d.name)}</td><td>${esc(d.desiredVersion)}</td><td>${esc(d.reportedVersion)}</td><td>${esc(Object.keys(d.delta || {}).join(', '))}</td></tr>`))}
      <h2>Recent events</h2>${eventsTable(events.items)}`;
  };
  await render();
  watch('/api/v1/nodes/' + encodeURIComponent(name), '', () => render().catch(() => {}));
}

function eventsTable(items) {
  return table(['Time', 'Reason', 'Node', 'Object', 'Message'], (items || []).slice().reverse().map((e) =>
    `<tr><td>${esc(e.time)}</td><td>${esc(e.reason)}</td><td>${esc(e.node)}</td><td>${esc(e.object)}</td><td>${esc(e.message)}</td></tr>`));
}

function workloadRow(w) {
  const s = w.status || {};
  const phases = Object.entries(s.instancesByPhase || {}).map(([k, v]) => `${esc(k)} ${v}`).join(', ');
  return `<tr data-workload="${esc(w.metadata.name)}"><td>${link('workloads', w.metadata.name)}</td><td>${esc(w.spec.type)}</td>
    <td>${esc(w.spec.replicas ?? 'every node')}</td><td class="desired">${esc(s.desiredInstances)}</td><td class="ready">${esc(s.readyInstances)}</td>
    <td>${esc(s.pending)}</td><td>${phases}</td><td>${esc(s.update || '')}</td></tr>`;
}

async function workloads() {
  const q = pagedQuery();
  const page = await api(listUrl('/api/v1/workloads', q));
  main.innerHTML = `<h1>Workloads</h1>${pagerHtml('workloads', q, page.continue)}
    ${table(['Name', 'Type', 'Replicas', 'Desired', 'Ready', 'Pending', 'Instances by phase', 'Update'], page.items.map(workloadRow), 'id="workload-table"')}`;
  bindFilter('workloads');
  const shown = new Set(page.items.map((w) => w.metadata.name));
  watch('/api/v1/workloads' + (filterParams(q) ? '?' + filterParams(q) : ''), page.resourceVersion, (ev) => {
    const w = ev.object;
    const row = main.querySelector(`tr[data-workload="${CSS.escape(w.metadata.name)}"]`);
    if (!shown.has(w.metadata.name) || !row) return;
    if (ev.type === 'DELETED') row.remove(); else row.outerHTML = workloadRow(w);
  }, route);
}

async function workloadDetail(name) {
  const render = async () => {
    const [w, events] = await Promise.all([
      api('/api/v1/workloads/' + encodeURIComponent(name)),
      api('/api/v1/events?limit=20&workload=' + encodeURIComponent(name))]);
    const s = w.status || {};
    main.innerHTML = `<h1>Workload ${esc(name)}</h1>
      <p>${esc(w.spec.type)} · desired ${esc(s.desiredInstances)} · <span id="ready-count">ready ${esc(s.readyInstances)}</span> · pending ${esc(s.pending)} ${s.pendingReason ? '(' + esc(s.pendingReason) + ')' : ''}</p>
      <h2>Update progress</h2><p>${esc(s.update || 'no rolling update')}</p>
      <h2>Placement and per-node status</h2>${table(['Node', 'Instance', 'Phase', 'Ready', 'Current spec', 'Restarts', 'Reason'], (s.instances || []).map((i) =>
        `<tr><td>${link('nodes', i.node)}</td><td>${esc(i.instanceId)}</td><td class="${cls('phase', i.phase)}">${esc(i.phase)}</td><td>${esc(i.ready)}</td><td>${esc(i.current)}</td><td>${esc(i.restarts)}</td><td>${esc(i.reason || i.message || '')}</td></tr>`), 'id="instance-table"')}
      <p class="muted">placed on ${esc((s.nodes || []).length)} nodes</p>
      <h2>Events</h2>${eventsTable(events.items)}
      <h2>Spec</h2>${json(w.spec)}`;
  };
  await render();
  let pending = null;
  watch('/api/v1/workloads/' + encodeURIComponent(name), '', () => {
    if (!pending) pending = setTimeout(() => { pending = null; render().catch(() => {}); }, 300);
  });
}

function rolloutRow(r) {
  const c = r.status.counts || {};
  const done = (c.succeeded || 0) + (c.failed || 0) + (c.aborted || 0);
  const pct = c.nodes ? Math.round(100 * done / c.nodes) : 0;
  return `<tr data-rollout="${esc(r.metadata.name)}"><td>${link('rollouts', r.metadata.name)}</td><td>${esc(r.spec.artifact.name + ' ' + r.spec.artifact.version)}</td>
    <td class="phase ${cls('phase', r.status.phase)}">${esc(r.status.phase)}</td><td>${esc(r.status.currentWave)}/${esc(r.status.waves)}</td>
    <td><span class="bar" style="width:${pct}px"></span> ${done}/${esc(c.nodes)}</td><td>${esc(c.succeeded)}</td><td>${esc(c.failed)}</td><td>${esc(r.status.pausedReason || '')}</td></tr>`;
}

async function rollouts() {
  const list = await api('/api/v1/rollouts');
  main.innerHTML = `<h1>Rollouts</h1>${table(['Name', 'Artifact', 'Phase', 'Wave', 'Progress', 'Succeeded', 'Failed', 'Paused reason'], list.items.map(rolloutRow), 'id="rollout-table"')}`;
  // The rollout watch's events carry summaries (no per-node list), enough for a row; a rollout
  // created or deleted lists the page again.
  const relist = throttled(1000, () => { if (location.hash.startsWith('#/rollouts')) route(); });
  watch('/api/v1/rollouts', list.resourceVersion, (ev) => {
    const row = main.querySelector(`tr[data-rollout="${CSS.escape(ev.object.metadata.name)}"]`);
    if (ev.type === 'MODIFIED' && row) row.outerHTML = rolloutRow(ev.object);
    else relist();
  }, route);
}

async function rolloutDetail(name) {
  const path = '/api/v1/rollouts/' + encodeURIComponent(name);
  let message = '';
  const render = async () => {
    const [r, events] = await Promise.all([api(path), api('/api/v1/events?limit=30&workload=' + encodeURIComponent('rollout/' + name))]);
    const s = r.status, c = s.counts || {};
    // status.waves is the count; nodes' wave and currentWave count from 1.
    const waves = [];
    for (let i = 1; i <= (s.waves || 0); i++) {
      const spec = (r.spec.waves || [])[i - 1] || {percent: 100};
      const inWave = (s.nodes || []).filter((n) => n.wave === i);
      const ok = inWave.filter((n) => n.result === 'succeeded').length;
      const bad = inWave.filter((n) => n.result === 'failed').length;
      const w = 200 / Math.max(1, inWave.length);
      waves.push(`<tr><td>${i}${i === s.currentWave ? ' (current)' : ''}</td><td>${esc(JSON.stringify(spec))}</td><td>${inWave.length}</td>
        <td><span class="bar" style="width:${ok * w}px"></span><span class="bar fail" style="width:${bad * w}px"></span> ${ok} ok, ${bad} failed, ${inWave.length - ok - bad} open</td></tr>`);
    }
    const failures = (s.nodes || []).filter((n) => n.result === 'failed');
    main.innerHTML = `<h1>Rollout ${esc(name)} <span id="rollout-phase" class="${cls('phase', s.phase)}">${esc(s.phase)}</span></h1>
      <p>artifact ${esc(r.spec.artifact.name)} ${esc(r.spec.artifact.version)} · wave ${esc(s.currentWave)}/${esc(s.waves)} ·
        nodes ${esc(c.nodes)}: ${esc(c.succeeded)} succeeded, ${esc(c.failed)} failed, ${esc(c.inProgress)} in progress, ${esc(c.pending)} pending
        ${s.pausedReason ? '· paused: ' + esc(s.pausedReason) : ''}</p>
      <div class="actions"><button id="pause">Pause</button><button id="resume">Resume</button><button id="abort">Abort</button>
        <span id="action-message">${esc(message)}</span></div>
      <h2>Waves</h2>${table(['Wave', 'Spec', 'Nodes', 'Progress'], waves)}
      <h2>Failures</h2>${failures.length ? table(['Node', 'Phase', 'Message', 'Attempts'], failures.map((n) =>
        `<tr><td>${link('nodes', n.node)}</td><td>${esc(n.phase)}</td><td>${esc(n.message)}</td><td>${esc(n.attempts)}</td></tr>`)) : '<p class="muted">none</p>'}
      <h2>Nodes</h2>${table(['Node', 'Wave', 'Phase', 'Result', 'Message'], (s.nodes || []).map((n) =>
        `<tr><td>${link('nodes', n.node)}</td><td>${esc(n.wave)}</td><td>${esc(n.phase)}</td><td class="${cls('result', n.result)}">${esc(n.result)}</td><td>${esc(n.message)}</td></tr>`))}
      <h2>Events</h2>${eventsTable(events.items)}`;
    for (const action of ['pause', 'resume', 'abort']) {
      document.getElementById(action).addEventListener('click', async () => {
        if (action === 'abort' && !confirm(`Abort rollout ${name}?`)) return;
        try {
          const done = await api(path + '/' + action, {method: 'POST'});
          message = `${action}: ${done.action} (phase ${done.status ? done.status.phase : '?'})`;
        } catch (e) {
          message = `${action} refused: ${e.message}`;
        }
        await render();
      });
    }
  };
  await render();
  // Each change of the rollout (its watch) reads the whole view again, at most every 300 ms.
  watch(path, '', throttled(300, () => render().catch(() => {})));
}

async function devices() {
  const q = pagedQuery();
  const page = await api(listUrl('/api/v1/devices', q));
  main.innerHTML = `<h1>Devices</h1>${pagerHtml('devices', q, page.continue)}
    ${table(['Name', 'Node', 'Desired v', 'Reported v', 'Observed', 'Delta'], page.items.map((d) =>
      `<tr><td>${link('devices', d.name)}</td><td>${link('nodes', d.node)}</td><td>${esc(d.desiredVersion)}</td><td>${esc(d.reportedVersion)}</td><td>${esc(d.observedDesired)}</td><td>${esc(Object.keys(d.delta || {}).join(', '))}</td></tr>`), 'id="device-table"')}`;
  bindFilter('devices');
}

async function deviceDetail(name) {
  const render = async () => {
    const d = await api('/api/v1/devices/' + encodeURIComponent(name));
    main.innerHTML = `<h1>Device ${esc(name)}</h1><p>on node ${link('nodes', d.node)} · labels ${labels(d.labels)} · updated ${esc(d.updatedAt)}</p>
      <h2>Desired (version ${esc(d.desiredVersion)}, observed ${esc(d.observedDesired)})</h2><div id="desired">${json(d.desired)}</div>
      <h2>Reported (version ${esc(d.reportedVersion)})</h2><div id="reported">${json(d.reported)}</div>
      <h2>Delta</h2><div id="delta">${json(d.delta)}</div>`;
  };
  await render();
  watch('/api/v1/devices/' + encodeURIComponent(name), '', () => render().catch(() => {}));
}

// ---- routing --------------------------------------------------------------------------------

async function route() {
  pageAbort.abort();
  pageAbort = new AbortController();
  pageTimers.forEach(clearInterval);
  pageTimers = [];
  live.textContent = '';
  const hash = location.hash || '#/overview';
  const [path] = hash.slice(2).split('?');
  const [kind, name] = path.split('/').map(decodeURIComponent);
  document.querySelectorAll('header nav a').forEach((a) => a.classList.toggle('active', a.getAttribute('href') === '#/' + kind));
  const pages = {overview, nodes, workloads, rollouts, devices};
  const details = {nodes: nodeDetail, workloads: workloadDetail, rollouts: rolloutDetail, devices: deviceDetail};
  try {
    if (name && details[kind]) await details[kind](name);
    else await (pages[kind] || overview)();
  } catch (e) {
    main.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

window.addEventListener('hashchange', route);
route();
