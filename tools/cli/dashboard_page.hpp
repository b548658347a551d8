// SPDX-License-Identifier: MIT
#pragma once

// The web dashboard's page, served by `jobsched serve` (serve.cpp): plain HTML, CSS and
// JavaScript, no build step and nothing fetched from elsewhere. The page reads the JSON API
// (/api/...) every 2 s and renders everything itself, so what a browser shows after load is
// the file's state. "{{QUERY}}" in the HTML is replaced by the token query ("?token=...")
// when the server requires one, so the style sheet and script carry it too.

namespace jobsched_cli::dashboard {

inline constexpr const char* html = R"html(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jobsched</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/dashboard.css{{QUERY}}">
<script src="/dashboard.js{{QUERY}}" defer></script>
</head>
<body>
<header>
  <h1>jobsched</h1>
  <span id="file" class="muted"></span>
  <span id="status" class="status">loading…</span>
</header>
<main>
  <section id="totals" class="cards" aria-label="jobs by state"></section>
  <div class="columns">
    <section class="panel">
      <h2>Queues</h2>
      <table id="queues"><thead></thead><tbody></tbody></table>
    </section>
    <section class="panel">
      <h2>Schedules</h2>
      <table id="schedules"><thead><tr><th>name</th><th>rule</th><th>queue</th><th>next</th><th>last</th></tr></thead><tbody></tbody></table>
    </section>
  </div>
  <section class="panel">
    <div class="toolbar">
      <h2>Jobs</h2>
      <label>state <select id="filter-state"><option value="">any</option></select></label>
      <label>queue <select id="filter-queue"><option value="*">any</option></select></label>
      <label>order <select id="filter-order"><option value="oldest">oldest first</option><option value="newest">newest first</option></select></label>
      <span class="spacer"></span>
      <button id="page-first" type="button">first</button>
      <button id="page-prev" type="button">previous</button>
      <span id="page-number" class="muted"></span>
      <button id="page-next" type="button">next</button>
    </div>
    <table id="jobs"><thead><tr><th>id</th><th>state</th><th>queue</th><th>payload</th><th>prio</th><th>attempts</th><th>starts</th><th>last error</th><th></th></tr></thead><tbody></tbody></table>
  </section>
  <section id="detail" class="panel hidden" aria-live="polite"></section>
</main>
</body>
</html>
)html";

inline constexpr const char* css = R"css(
:root { --bg:#f5f6f8; --panel:#fff; --ink:#1d2330; --muted:#6b7385; --line:#e3e6ec;
  --accent:#3a5bd9; --scheduled:#7b61c9; --available:#2f7fd1; --running:#d08a10;
  --completed:#2b9a5b; --failed:#d03c3c; --cancelled:#8a8f99; --expired:#a07452; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; background:var(--bg); color:var(--ink); }
header { display:flex; align-items:baseline; gap:16px; padding:12px 24px; background:#1d2330; color:#fff; }
header h1 { margin:0; font-size:20px; }
header .muted { color:#aab2c5; }
.status { margin-left:auto; font-size:12px; color:#aab2c5; }
.status.error { color:#ff9c9c; }
main { padding:16px 24px; display:flex; flex-direction:column; gap:16px; }
.cards { display:grid; grid-template-columns:repeat(8, 1fr); gap:10px; }
.card { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:10px 12px; border-top:4px solid var(--line); }
.card .n { font-size:24px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .label { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.card.scheduled { border-top-color:var(--scheduled); } .card.available { border-top-color:var(--available); }
.card.running { border-top-color:var(--running); } .card.completed { border-top-color:var(--completed); }
.card.failed { border-top-color:var(--failed); } .card.cancelled { border-top-color:var(--cancelled); }
.card.expired { border-top-color:var(--expired); } .card.late { border-top-color:var(--ink); }
.columns { display:grid; grid-template-columns:auto minmax(0, 1fr); gap:16px; }
.panel { background:var(--panel); border:1px solid var(--line); border-radius:8px; padding:12px 14px; overflow-x:auto; }
.panel h2 { margin:0 0 8px; font-size:15px; }
.toolbar { display:flex; align-items:center; gap:12px; margin-bottom:8px; flex-wrap:wrap; }
.toolbar h2 { margin:0 8px 0 0; }
.spacer { flex:1; }
table { width:100%; border-collapse:collapse; }
th { text-align:left; font-weight:600; color:var(--muted); font-size:12px; border-bottom:1px solid var(--line); padding:4px 6px; }
td { border-bottom:1px solid var(--line); padding:5px 6px; vertical-align:top; }
td.num, th.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
th, .badge, td.when, td.name, #schedules td.mono { white-space:nowrap; }
td.zero { color:#c2c7d2; }
tr.selected td { background:#eef2ff; }
tbody tr.job { cursor:pointer; }
tbody tr.job:hover td { background:#f7f8fb; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12px; color:#fff; background:var(--muted); }
.badge.scheduled { background:var(--scheduled); } .badge.available { background:var(--available); }
.badge.running { background:var(--running); } .badge.completed { background:var(--completed); }
.badge.failed { background:var(--failed); } .badge.cancelled { background:var(--cancelled); }
.badge.expired { background:var(--expired); } .badge.paused { background:#444; }
.muted { color:var(--muted); }
.mono, td.payload, pre { font-family:ui-monospace, "SFMono-Regular", Menlo, monospace; font-size:12px; }
td.error { color:var(--failed); max-width:280px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
td.payload { max-width:260px; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
button { font:inherit; font-size:12px; padding:3px 10px; border:1px solid #c9ceda; border-radius:5px; background:#fff; cursor:pointer; }
button:hover:not(:disabled) { border-color:var(--accent); color:var(--accent); }
button:disabled { opacity:.4; cursor:default; }
button.danger:hover:not(:disabled) { border-color:var(--failed); color:var(--failed); }
select { font:inherit; font-size:13px; }
.hidden { display:none; }
dl { display:grid; grid-template-columns:max-content 1fr; gap:4px 16px; margin:0 0 10px; }
dt { color:var(--muted); } dd { margin:0; }
pre { background:#f3f4f7; border:1px solid var(--line); border-radius:6px; padding:8px; max-height:240px; overflow:auto; white-space:pre-wrap; word-break:break-all; margin:4px 0 10px; }
.actions { display:flex; gap:8px; margin-bottom:10px; align-items:center; }
.row-actions { display:flex; gap:6px; justify-content:flex-end; }
td.buttons { padding:3px 6px; vertical-align:middle; }
#detail { position:fixed; top:0; right:0; bottom:0; width:460px; overflow-y:auto; border-radius:0;
  box-shadow:-6px 0 24px rgba(20,25,40,.18); z-index:10; }
.message { margin-left:8px; font-size:12px; }
@media (max-width: 1000px) {
  .cards { grid-template-columns:repeat(4, 1fr); }
  .columns { grid-template-columns:minmax(0, 1fr); }
  #detail { width:100%; }
}
.message.error { color:var(--failed); }
)css";

inline constexpr const char* js = R"js('use strict';
(function () {
  const STATES = ['scheduled', 'available', 'running', 'completed', 'failed', 'cancelled', 'expired'];
  const address = new URLSearchParams(location.search);
  const token = address.get('token');
  // Jobs a page: ?limit=N in the address, 20 by default.
  const limit = Math.min(1000, Math.max(1, Number(address.get('limit')) || 20));
  const view = { state: '', queue: '*', order: 'oldest', after: null, previous: [], next: null, selected: null };
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  async function api(path, method) {
    const headers = { 'Accept': 'application/json' };
    if (token) headers['Authorization'] = 'Bearer ' + token;
    const response = await fetch(path, { method: method || 'GET', headers, cache: 'no-store' });
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) throw new Error((body && body.error) || (response.status + ' ' + response.statusText));
    return body;
  }

  function seconds(s) {
    const a = Math.abs(s);
    if (a < 1) return a.toFixed(2) + ' s';
    if (a < 90) return a.toFixed(1) + ' s';
    if (a < 5400) return (a / 60).toFixed(1) + ' min';
    if (a < 172800) return (a / 3600).toFixed(1) + ' h';
    return (a / 86400).toFixed(1) + ' d';
  }
  function iso(t) { return t === null || t === undefined ? '' : new Date(t * 1000).toISOString().replace('.000Z', 'Z'); }
  function relative(t, now) {
    if (t === null || t === undefined) return '—';
    const d = t - now;
    return Math.abs(d) < 0.5 ? 'now' : d > 0 ? 'in ' + seconds(d) : seconds(d) + ' ago';
  }
  function when(t, now) { return el('span', { title: iso(t) }, relative(t, now)); }
  // "every 3600 from 1796149646.75" reads as "every 1 h"; cron rules read as they are.
  function ruleText(rule) {
    const m = /^every (\S+) from (\S+)$/.exec(rule);
    if (!m) return rule;
    const n = Number(m[1]);
    for (const [size, unit] of [[86400, 'd'], [3600, 'h'], [60, 'min']])
      if (n >= size && n % size === 0) return 'every ' + n / size + ' ' + unit;
    return 'every ' + n + ' s';
  }
  function queueName(q) { return q === '' ? '(default)' : q; }

  function renderTotals(stats) {
    const cards = STATES.map((s) => el('div', { class: 'card ' + s, id: 'total-' + s, 'data-count': stats.totals[s] },
      el('div', { class: 'n' }, stats.totals[s]), el('div', { class: 'label' }, s)));
    cards.push(el('div', { class: 'card late', id: 'oldest-due', 'data-seconds': stats.oldest_due === null ? '' : stats.oldest_due },
      el('div', { class: 'n' }, stats.oldest_due === null ? '—' : seconds(stats.oldest_due)),
      el('div', { class: 'label' }, 'oldest due, late')));
    $('totals').replaceChildren(...cards);
  }

  function renderQueues(stats) {
    const table = $('queues');
    table.tHead.replaceChildren(el('tr', {}, el('th', {}, 'queue'),
      STATES.map((s) => el('th', { class: 'num' }, s)), el('th', { class: 'num' }, 'late'), el('th', {}, '')));
    const rows = stats.queues.map((q) => el('tr', { 'data-queue': q.queue },
      el('td', { class: 'name' }, queueName(q.queue), ' ', q.paused ? el('span', { class: 'badge paused' }, 'paused') : null),
      STATES.map((s) => el('td', { class: 'num' + (q.jobs[s] ? '' : ' zero'), 'data-state': s }, q.jobs[s])),
      el('td', { class: 'num' }, q.oldest_due === null ? '—' : seconds(q.oldest_due)),
      el('td', { class: 'buttons' }, el('button', { type: 'button', 'data-action': q.paused ? 'resume' : 'pause',
        onclick: () => act('/api/queues/' + encodeURIComponent(q.queue) + '/' + (q.paused ? 'resume' : 'pause')) },
        q.paused ? 'resume' : 'pause'))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 10, class: 'muted' }, 'no jobs yet')));
    table.tBodies[0].replaceChildren(...rows);
    const select = $('filter-queue');
    const names = ['*'].concat(stats.queues.map((q) => q.queue));
    const have = Array.from(select.options).map((o) => o.value);
    if (names.join('\u0000') !== have.join('\u0000')) {
      select.replaceChildren(...names.map((n) => el('option', { value: n }, n === '*' ? 'any' : queueName(n))));
      select.value = names.includes(view.queue) ? view.queue : '*';
    }
  }

  function renderSchedules(list) {
    const now = list.at;
    const rows = list.schedules.map((s) => el('tr', { 'data-schedule': s.name },
      el('td', {}, s.name, ' ', s.paused ? el('span', { class: 'badge paused' }, 'paused') : null),
      el('td', { class: 'mono', title: s.rule }, ruleText(s.rule)), el('td', {}, queueName(s.queue)),
      el('td', { class: 'when' }, when(s.next_fire, now)), el('td', { class: 'when' }, when(s.last_fire, now))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'muted' }, 'no schedules')));
    $('schedules').tBodies[0].replaceChildren(...rows);
  }

  function jobButtons(job) {
    const finished = job.state === 'completed' || job.state === 'failed' || job.state === 'cancelled' || job.state === 'expired';
    return [
      el('button', { type: 'button', 'data-action': 'retry', 'data-id': job.id, disabled: !(job.state === 'failed' || job.state === 'cancelled'),
        onclick: (e) => { e.stopPropagation(); act('/api/jobs/' + job.id + '/retry'); } }, 'retry'),
      el('button', { type: 'button', 'data-action': 'cancel', 'data-id': job.id, disabled: finished,
        onclick: (e) => { e.stopPropagation(); act('/api/jobs/' + job.id + '/cancel'); } }, 'cancel'),
      el('button', { type: 'button', class: 'danger', 'data-action': 'delete', 'data-id': job.id,
        onclick: (e) => { e.stopPropagation(); if (confirm('Delete job ' + job.id + '?')) act('/api/jobs/' + job.id + '/delete'); } }, 'delete'),
    ];
  }

  function renderJobs(page) {
    const now = page.at;
    view.next = page.next_after;
    const rows = page.jobs.map((j) => el('tr', { class: 'job' + (view.selected === j.id ? ' selected' : ''), 'data-id': j.id, 'data-state': j.state,
      onclick: () => { select(j.id); } },
      el('td', { class: 'num' }, j.id), el('td', {}, el('span', { class: 'badge ' + j.state }, j.state)),
      el('td', {}, queueName(j.queue)), el('td', { class: 'payload', title: j.preview }, j.preview),
      el('td', { class: 'num' }, j.priority), el('td', { class: 'num' }, j.attempts),
      el('td', { class: 'when' }, when(j.starts_at, now)), el('td', { class: 'error', title: j.last_error || '' }, j.last_error || ''),
      el('td', { class: 'buttons' }, el('div', { class: 'row-actions' }, jobButtons(j)))));
    if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 9, class: 'muted' }, 'no jobs')));
    $('jobs').tBodies[0].replaceChildren(...rows);
    $('page-prev').disabled = view.previous.length === 0;
    $('page-first').disabled = view.previous.length === 0;
    $('page-next').disabled = view.next === null;
    $('page-number').textContent = 'page ' + (view.previous.length + 1);
  }

  function payloadBlock(title, p) {
    if (p.storage_class === 'null') return [el('dt', {}, title), el('dd', { class: 'muted' }, 'NULL')];
    if (p.storage_class === 'integer' || p.storage_class === 'real')
      return [el('dt', {}, title), el('dd', { class: 'mono' }, String(p.value), ' ', el('span', { class: 'muted' }, p.storage_class))];
    const note = p.size + ' bytes, ' + p.storage_class + (p.truncated ? ', first ' + p.shown + ' shown' : '');
    return [el('dt', {}, title), el('dd', {}, el('span', { class: 'muted' }, note),
      p.text !== undefined ? el('pre', { class: 'text' }, p.text) : el('pre', { class: 'hex' }, p.hex))];
  }

  function renderDetail(job) {
    const box = $('detail');
    if (!job) { box.classList.add('hidden'); box.replaceChildren(); return; }
    const now = job.at;
    const row = (k, v) => (v === null || v === undefined || v === '') ? [] : [el('dt', {}, k), el('dd', {}, v)];
    const time = (k, t) => t === null || t === undefined ? [] : row(k, el('span', {}, iso(t), ' ', el('span', { class: 'muted' }, '(' + relative(t, now) + ')')));
    box.replaceChildren(
      el('div', { class: 'toolbar' }, el('h2', {}, 'Job ' + job.id), el('span', { class: 'badge ' + job.state, id: 'detail-state' }, job.state),
        el('span', { class: 'spacer' }), el('button', { type: 'button', onclick: () => { select(null); } }, 'close')),
      el('div', { class: 'actions' }, jobButtons(job), el('span', { id: 'message', class: 'message' })),
      el('dl', {},
        row('queue', queueName(job.queue)), row('priority', job.priority),
        row('attempts', job.attempts + (job.max_attempts === null ? '' : ' of ' + job.max_attempts)),
        row('key', job.key), row('schedule', job.firing ? job.firing.schedule + ' at ' + iso(job.firing.at) : null),
        time('created', job.created_at), time('starts', job.starts_at), time('expires', job.expires_at),
        time('locked', job.locked_at), time('lease until', job.lease_until), time('completed', job.completed_at),
        time('failed', job.failed_at), time('cancelled', job.cancelled_at),
        job.last_error === null ? [] : [el('dt', {}, 'last error'), el('dd', {}, el('pre', { class: 'error' }, job.last_error))],
        payloadBlock('payload', job.data), job.result.storage_class === 'null' ? [] : payloadBlock('result', job.result)));
    box.classList.remove('hidden');
  }

  function jobsPath() {
    const q = new URLSearchParams();
    if (view.state) q.set('state', view.state);
    if (view.queue !== '*') q.set('queue', view.queue);
    q.set('order', view.order);
    if (view.after !== null) q.set('after', view.after);
    q.set('limit', limit);
    return '/api/jobs?' + q.toString();
  }

  // The job shown in the detail panel is in the address (#job=ID), so it can be linked to.
  function select(id) {
    view.selected = id;
    history.replaceState(null, '', id === null ? location.pathname + location.search : '#job=' + id);
    refresh();
  }

  let refreshing = false, again = false;
  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      const [stats, page, schedules] = await Promise.all([api('/api/stats'), api(jobsPath()), api('/api/schedules')]);
      $('file').textContent = stats.db + ' · schema ' + stats.schema_version;
      renderTotals(stats); renderQueues(stats); renderSchedules(schedules); renderJobs(page);
      let job = null;
      if (view.selected !== null) {
        try { job = await api('/api/jobs/' + view.selected); } catch (e) { view.selected = null; }
      }
      renderDetail(job);
      $('status').textContent = 'updated ' + new Date().toLocaleTimeString();
      $('status').classList.remove('error');
    } catch (e) {
      $('status').textContent = 'error: ' + e.message;
      $('status').classList.add('error');
    } finally {
      refreshing = false;
      if (again) { again = false; refresh(); }
    }
  }

  async function act(path) {
    try {
      await api(path, 'POST');
      $('status').textContent = 'done: ' + path.replace('/api/', '');
      $('status').classList.remove('error');
    } catch (e) {
      $('status').textContent = 'refused: ' + e.message;
      $('status').classList.add('error');
    }
    refresh();
  }

  function start() {
    const linked = /^#job=(\d+)$/.exec(location.hash);
    if (linked) view.selected = Number(linked[1]);
    const state = $('filter-state');
    for (const s of STATES) state.append(el('option', { value: s }, s));
    const reset = () => { view.after = null; view.previous = []; refresh(); };
    state.addEventListener('change', () => { view.state = state.value; reset(); });
    $('filter-queue').addEventListener('change', () => { view.queue = $('filter-queue').value; reset(); });
    $('filter-order').addEventListener('change', () => { view.order = $('filter-order').value; reset(); });
    $('page-first').addEventListener('click', reset);
    $('page-prev').addEventListener('click', () => { view.after = view.previous.pop(); if (view.after === undefined) view.after = null; refresh(); });
    $('page-next').addEventListener('click', () => { if (view.next === null) return; view.previous.push(view.after); view.after = view.next; refresh(); });
    refresh();
    setInterval(refresh, 2000);
  }
  start();
})();
)js";

}  // namespace jobsched_cli::dashboard
