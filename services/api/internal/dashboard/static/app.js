// Spool dashboard: a small single-page app over the public /v1 API.
// No build step, no dependencies. Every piece of data reaches the page
// through text nodes (see h()), never parsed as markup, so job payloads and
// error messages cannot inject markup.
'use strict';

(() => {
  const TOKEN_KEY = 'spool.token';
  const REFRESH_MS = 5000;
  const STATUSES = ['pending', 'running', 'retrying', 'blocked', 'completed', 'dead', 'cancelled'];
  const CANCELLABLE = ['pending', 'retrying', 'running', 'blocked'];
  const RETRYABLE = ['dead', 'cancelled'];

  const view = document.getElementById('view');
  const flashBox = document.getElementById('flash');
  const updated = document.getElementById('updated');

  // ---- helpers -------------------------------------------------------------

  // h builds an element: attrs may hold on<event> handlers, dataset entries
  // (data: {...}) and properties; children are nodes or text.
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'data') Object.assign(el.dataset, v);
      else if (k === 'class') el.className = v;
      else if (k in el && typeof v !== 'string') el[k] = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function badge(status) {
    return h('span', { class: 'badge ' + status }, status);
  }

  function when(iso) {
    if (!iso) return h('span', { class: 'muted' }, '—');
    const t = new Date(iso);
    return h('time', { datetime: iso, title: t.toLocaleString() }, relative(t));
  }

  function relative(t) {
    const s = Math.round((t.getTime() - Date.now()) / 1000);
    const a = Math.abs(s);
    const text = a < 1 ? 'now' : duration(a);
    if (a < 1) return text;
    return s < 0 ? text + ' ago' : 'in ' + text;
  }

  function duration(sec) {
    sec = Math.round(sec);
    if (sec < 60) return sec + 's';
    if (sec < 3600) return Math.floor(sec / 60) + 'm ' + (sec % 60) + 's';
    if (sec < 86400) return Math.floor(sec / 3600) + 'h ' + Math.floor((sec % 3600) / 60) + 'm';
    return Math.floor(sec / 86400) + 'd ' + Math.floor((sec % 86400) / 3600) + 'h';
  }

  function clip(s, n) {
    if (!s) return '';
    return s.length > n ? s.slice(0, n - 1) + '…' : s;
  }

  function pretty(raw) {
    if (raw === undefined || raw === null) return '';
    try { return JSON.stringify(raw, null, 2); } catch (e) { return String(raw); }
  }

  function flash(msg, isError) {
    flashBox.textContent = msg;
    flashBox.className = isError ? 'error' : '';
    flashBox.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { flashBox.hidden = true; }, isError ? 10000 : 5000);
  }

  function table(headers, rows, emptyText) {
    if (rows.length === 0) return h('div', { class: 'empty' }, emptyText || 'Nothing here.');
    return h('table', {},
      h('thead', {}, h('tr', {}, headers.map((x) => {
        const [label, cls] = Array.isArray(x) ? x : [x, ''];
        return h('th', { class: cls }, label);
      }))),
      h('tbody', {}, rows));
  }

  // parseHash splits "#/jobs?status=dead" into ["jobs"], {status: "dead"}.
  function parseHash() {
    const raw = location.hash.replace(/^#\/?/, '');
    const [path, query] = raw.split('?');
    return { parts: path.split('/').filter(Boolean), params: new URLSearchParams(query || '') };
  }

  function go(path, params) {
    const q = params ? new URLSearchParams(Object.entries(params).filter(([, v]) => v !== '' && v != null)).toString() : '';
    location.hash = '#/' + path + (q ? '?' + q : '');
  }

  // ---- API -----------------------------------------------------------------

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    const init = { method, headers, cache: 'no-store' };
    // The API takes a state-changing request only as application/json,
    // empty bodies included (a page elsewhere cannot send that unasked).
    if (method !== 'GET') headers['Content-Type'] = 'application/json';
    if (body !== undefined) init.body = JSON.stringify(body);
    let res;
    try {
      res = await fetch('v1/' + path, init);
    } catch (e) {
      throw new APIError(0, 'cannot reach the API: ' + e.message);
    }
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (!res.ok) {
      let msg = (data && data.error) || res.status + ' ' + res.statusText;
      if (res.status === 401) msg = 'The API wants a token: enter one above (' + msg + ')';
      if (res.status === 403) msg = 'This token may not do that (' + msg + ')';
      throw new APIError(res.status, msg);
    }
    return data;
  }

  // act runs a state-changing call from a button: disabled while it runs,
  // the outcome flashed, the view re-rendered.
  async function act(button, fn, okText) {
    button.disabled = true;
    try {
      const result = await fn();
      flash(typeof okText === 'function' ? okText(result) : okText);
    } catch (e) {
      flash(e.message, true);
    } finally {
      button.disabled = false;
      render();
    }
  }

  // ---- views ---------------------------------------------------------------

  // Completion rates come from two successive /v1/queues samples, so they
  // appear from the second refresh on. Pruning can lower a count; such a
  // drop reads as zero.
  let lastSample = null;

  function rate(queue, status, now, counts) {
    if (!lastSample || !lastSample.counts[queue]) return null;
    const dt = (now - lastSample.t) / 60000;
    if (dt <= 0) return null;
    const before = lastSample.counts[queue][status] || 0;
    return Math.max(0, ((counts[status] || 0) - before) / dt);
  }

  async function queuesView() {
    const [{ queues }, { kinds }] = await Promise.all([api('GET', 'queues'), api('GET', 'kinds')]);
    queues.sort((a, b) => a.name.localeCompare(b.name));
    const now = Date.now();
    const sum = (s) => queues.reduce((n, q) => n + (q.counts[s] || 0), 0);
    const oldest = queues.reduce((m, q) => Math.max(m, q.oldest_pending_age_seconds || 0), 0);
    const rates = {};
    for (const q of queues) {
      rates[q.name] = { completed: rate(q.name, 'completed', now, q.counts), dead: rate(q.name, 'dead', now, q.counts) };
    }
    lastSample = { t: now, counts: Object.fromEntries(queues.map((q) => [q.name, { ...q.counts }])) };
    const fmtRate = (r) => (r === null ? h('span', { class: 'muted', title: 'shown from the second refresh on' }, '…') : r.toFixed(1));

    const cards = h('div', { class: 'cards' },
      card('Pending + retrying', sum('pending') + sum('retrying')),
      card('Running', sum('running')),
      card('Dead', sum('dead')),
      card('Oldest due job waited', oldest > 0 ? duration(oldest) : '—'),
      card('Queues', queues.length));

    const rows = queues.map((q) => {
      const limit = q.limit ? [q.limit.max_running != null ? 'max ' + q.limit.max_running : '',
        q.limit.rate_per_second != null ? q.limit.rate_per_second + '/s' : ''].filter(Boolean).join(', ') : '';
      return h('tr', { data: { queue: q.name } },
        h('td', {}, h('a', { href: '#/jobs?queue=' + encodeURIComponent(q.name) }, q.name)),
        h('td', {}, badge(q.paused ? 'paused' : 'active')),
        STATUSES.map((s) => h('td', { class: 'num' }, (q.counts[s] || 0) > 0 && s !== 'completed'
          ? h('a', { href: '#/jobs?queue=' + encodeURIComponent(q.name) + '&status=' + s }, q.counts[s])
          : String(q.counts[s] || 0))),
        h('td', { class: 'num' }, q.oldest_pending_age_seconds > 0 ? duration(q.oldest_pending_age_seconds) : '—'),
        h('td', { class: 'num' }, fmtRate(rates[q.name].completed)),
        h('td', { class: 'num' }, fmtRate(rates[q.name].dead)),
        h('td', {}, limit || h('span', { class: 'muted' }, 'none')),
        h('td', { class: 'actions' }, q.paused
          ? h('button', { class: 'small', data: { action: 'resume', queue: q.name },
            onclick: (e) => act(e.currentTarget, () => api('POST', 'queues/' + encodeURIComponent(q.name) + '/resume'), 'Queue ' + q.name + ' resumed') }, 'Resume')
          : h('button', { class: 'small secondary', data: { action: 'pause', queue: q.name },
            onclick: (e) => act(e.currentTarget, () => api('POST', 'queues/' + encodeURIComponent(q.name) + '/pause'), 'Queue ' + q.name + ' paused') }, 'Pause')));
    });
    // Jobs of kinds that no live worker runs wait for nobody: say so first.
    const unserved = (kinds || []).filter((k) => k.unserved);
    const warning = unserved.length === 0 ? [] : h('div', { class: 'flash error', id: 'unserved' },
      'Waiting for a kind no live worker runs: ',
      unserved.map((k, i) => [i > 0 ? ', ' : '', h('a', { href: '#/jobs?type=' + encodeURIComponent(k.name) }, k.name), ' (' + k.waiting + ')']));
    return [h('h1', {}, 'Queues'), warning, cards,
      table(['Queue', 'State', ...STATUSES.map((s) => [s, 'num']), ['Oldest due', 'num'], ['Completed/min', 'num'], ['Dead/min', 'num'], 'Limit', ''],
        rows, 'No queues yet: enqueue a job (POST /v1/jobs).')];
  }

  function card(label, value) {
    return h('div', { class: 'card' }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
  }

  async function options() {
    const [kinds, queues] = await Promise.all([api('GET', 'kinds'), api('GET', 'queues')]);
    return { types: (kinds.kinds || []).map((k) => k.name), queues: (queues.queues || []).map((q) => q.name).sort() };
  }

  function select(name, label, values, current, anyText) {
    const vals = current && !values.includes(current) ? [...values, current] : values;
    return h('label', {}, label, h('select', { name },
      h('option', { value: '' }, anyText || 'any'),
      vals.map((v) => h('option', { value: v, selected: v === current }, v))));
  }

  function filterForm(path, fields) {
    const form = h('form', { class: 'filters', onsubmit: (e) => {
      e.preventDefault();
      const p = {};
      for (const el of form.elements) if (el.name) p[el.name] = el.value;
      go(path, p);
    } }, fields, h('button', { type: 'submit' }, 'Apply'),
    h('button', { type: 'button', class: 'secondary', onclick: () => go(path) }, 'Clear'));
    for (const el of form.querySelectorAll('select')) el.addEventListener('change', () => form.requestSubmit());
    return form;
  }

  function jobRows(jobs, withActions) {
    return jobs.map((j) => h('tr', { data: { jobId: j.id } },
      h('td', { class: 'num' }, h('a', { href: '#/job/' + j.id }, j.id)),
      h('td', {}, j.type),
      h('td', {}, j.queue),
      h('td', {}, badge(j.status)),
      h('td', { class: 'num' }, j.attempts + '/' + j.max_attempts),
      h('td', {}, j.status === 'pending' || j.status === 'retrying' ? when(j.run_at) : when(j.finished_at || j.started_at || j.created_at)),
      h('td', { class: 'err', title: j.last_error || '' }, clip(j.last_error, 120)),
      withActions ? h('td', { class: 'actions' }, withActions(j)) : null));
  }

  async function jobsView(params) {
    const status = params.get('status') || '';
    const type = params.get('type') || '';
    const queue = params.get('queue') || '';
    const after = params.get('after') || '';
    const q = new URLSearchParams({ limit: '50' });
    if (status) q.set('status', status);
    if (type) q.set('type', type);
    if (queue) q.set('queue', queue);
    if (after) q.set('after', after);
    const [opts, list] = await Promise.all([options(), api('GET', 'jobs?' + q)]);
    const form = filterForm('jobs', [
      select('status', 'Status', STATUSES, status),
      select('type', 'Type', opts.types, type),
      select('queue', 'Queue', opts.queues, queue),
    ]);
    const pager = h('div', { class: 'pager' },
      after ? h('button', { class: 'secondary', onclick: () => history.back() }, '← Newer') : null,
      list.next_after ? h('button', { class: 'secondary', onclick: () => go('jobs', { status, type, queue, after: list.next_after }) }, 'Older →') : null);
    return [h('h1', {}, 'Jobs'), form,
      table([['ID', 'num'], 'Type', 'Queue', 'Status', ['Attempts', 'num'], 'When', 'Last error'],
        jobRows(list.jobs, null), list.next_after ? 'No matches among these jobs; older ones may match (Older →).' : 'No jobs match.'), pager];
  }

  function retryButton(j, label) {
    return h('button', { class: 'small', data: { action: 'retry', jobId: j.id },
      onclick: (e) => act(e.currentTarget, () => api('POST', 'jobs/' + j.id + '/retry'), 'Job ' + j.id + ' is pending again') }, label || 'Retry');
  }

  function cancelButton(j) {
    return h('button', { class: 'small danger secondary', data: { action: 'cancel', jobId: j.id },
      onclick: (e) => act(e.currentTarget, () => api('POST', 'jobs/' + j.id + '/cancel'), 'Job ' + j.id + ' cancelled') }, 'Cancel');
  }

  function deleteDeadButton(j) {
    return confirmButton('Delete', 'Click again to delete', 'small danger secondary', (b) => act(b,
      () => api('DELETE', 'dead?id=' + j.id),
      (r) => r.deleted ? 'Job ' + j.id + ' deleted' : 'Job ' + j.id + ' was no longer dead: not deleted'),
    { action: 'delete', jobId: j.id });
  }

  // confirmButton needs two clicks: the first arms it (no browser dialog).
  function confirmButton(label, armedLabel, cls, fn, data) {
    const b = h('button', { class: cls, data: data, onclick: () => {
      if (!b.dataset.armed) {
        b.dataset.armed = '1';
        b.textContent = armedLabel;
        setTimeout(() => { delete b.dataset.armed; b.textContent = label; }, 4000);
        return;
      }
      fn(b);
    } }, label);
    return b;
  }

  async function deadView(params) {
    const type = params.get('type') || '';
    const queue = params.get('queue') || '';
    const q = new URLSearchParams({ status: 'dead', limit: '100' });
    if (type) q.set('type', type);
    if (queue) q.set('queue', queue);
    const [opts, list] = await Promise.all([options(), api('GET', 'jobs?' + q)]);
    const filter = {};
    if (type) filter.type = type;
    if (queue) filter.queue = queue;
    const scope = type || queue ? 'matching' : 'all';
    const del = new URLSearchParams(filter);
    if (!type && !queue) del.set('all', 'true');
    const toolbar = h('div', { class: 'toolbar' },
      h('button', { data: { action: 'retry-all' }, onclick: (e) => act(e.currentTarget,
        () => api('POST', 'dead/retry', filter), (r) => r.retried + ' dead jobs are pending again') }, 'Retry ' + scope + ' dead jobs'),
      confirmButton('Delete ' + scope + ' dead jobs', 'Click again to delete for good', 'danger secondary', (b) => act(b,
        () => api('DELETE', 'dead?' + del), (r) => r.deleted + ' dead jobs deleted')),
      h('span', { class: 'muted' }, list.jobs.length + (list.next_after ? '+' : '') + ' shown'));
    return [h('h1', {}, 'Dead jobs'),
      filterForm('dead', [select('type', 'Type', opts.types, type), select('queue', 'Queue', opts.queues, queue)]),
      toolbar,
      table([['ID', 'num'], 'Type', 'Queue', 'Status', ['Attempts', 'num'], 'Died', 'Last error', ''],
        jobRows(list.jobs, (j) => [retryButton(j), ' ', deleteDeadButton(j)]), 'No dead jobs.')];
  }

  async function jobView(id) {
    const { job: j } = await api('GET', 'jobs/' + encodeURIComponent(id));
    const field = (k, v) => [h('dt', {}, k), h('dd', {}, v === undefined || v === null || v === '' ? h('span', { class: 'muted' }, '—') : v)];
    const actions = h('div', { class: 'toolbar' },
      RETRYABLE.includes(j.status) ? retryButton(j) : null,
      CANCELLABLE.includes(j.status) ? cancelButton(j) : null,
      h('a', { href: '#/jobs?type=' + encodeURIComponent(j.type) }, 'Other ' + j.type + ' jobs'));
    const errors = (j.errors || []).slice().reverse().map((e) => h('tr', {},
      h('td', { class: 'num' }, e.attempt), h('td', {}, when(e.at)), h('td', {}, e.worker_id || ''),
      h('td', {}, h('pre', { class: 'errtext' }, e.error))));
    return [h('h1', {}, 'Job ', String(j.id), ' ', badge(j.status)), actions,
      h('dl', { class: 'fields' },
        field('Type', j.type), field('Queue', j.queue), field('Priority', j.priority),
        field('Attempts', j.attempts + ' of ' + j.max_attempts),
        field('Run at', when(j.run_at)), field('Created', when(j.created_at)),
        field('Started', when(j.started_at)), field('Finished', when(j.finished_at)),
        field('Worker', j.worker_id), field('Lease until', j.lease_until ? when(j.lease_until) : null),
        field('Timeout', j.timeout), field('Idempotency key', j.idempotency_key),
        field('Request ID', j.request_id),
        field('Workflow', j.workflow_id ? h('a', { href: '#/workflow/' + j.workflow_id }, j.workflow_id + (j.step ? ' (step ' + j.step + ')' : '')) : null),
        field('Last error', j.last_error ? h('pre', { class: 'errtext' }, j.last_error) : null)),
      h('h2', {}, 'Payload'), h('pre', { class: 'json' }, pretty(j.payload)),
      j.result ? [h('h2', {}, 'Result'), h('pre', { class: 'json' }, pretty(j.result))] : null,
      h('h2', {}, 'Error history'),
      table([['Attempt', 'num'], 'At', 'Worker', 'Error'], errors, 'No failed attempts.')];
  }

  async function schedulesView() {
    const { schedules } = await api('GET', 'schedules');
    const rows = schedules.map((s) => h('tr', {},
      h('td', {}, s.name), h('td', {}, h('code', {}, s.spec)), h('td', {}, s.timezone || 'UTC'),
      h('td', {}, h('a', { href: '#/jobs?type=' + encodeURIComponent(s.type) }, s.type)),
      h('td', {}, s.queue || 'default'), h('td', { class: 'num' }, s.priority || 0),
      h('td', {}, when(s.next_run)), h('td', {}, when(s.last_tick)),
      h('td', {}, s.source || ''), h('td', {}, s.catch_up ? 'yes' : 'no'),
      h('td', {}, s.payload_omitted ? h('span', { class: 'muted' }, '(too large for the list)') : h('code', {}, clip(JSON.stringify(s.payload || {}), 80)))));
    return [h('h1', {}, 'Schedules'),
      table(['Name', 'Spec', 'Time zone', 'Type', 'Queue', ['Priority', 'num'], 'Next run', 'Last tick', 'Source', 'Catch up', 'Payload'],
        rows, 'No schedules (PUT /v1/schedules/{name}, or the worker\'s schedules file).')];
  }

  function workflowLookup(current) {
    const input = h('input', { name: 'id', type: 'number', min: '1', placeholder: 'workflow id', value: current || '' });
    return h('form', { class: 'filters', onsubmit: (e) => {
      e.preventDefault();
      if (input.value) go('workflow/' + input.value);
    } }, h('label', {}, 'Workflow ID', input), h('button', { type: 'submit' }, 'Look up'));
  }

  async function workflowsView() {
    // There is no list route for workflows: collect the ids of recent jobs
    // that belong to one.
    const { jobs } = await api('GET', 'jobs?limit=500');
    const seen = new Map();
    for (const j of jobs) {
      if (j.workflow_id && !seen.has(j.workflow_id)) seen.set(j.workflow_id, j);
    }
    const rows = [...seen.entries()].slice(0, 50).map(([id, j]) => h('tr', {},
      h('td', { class: 'num' }, h('a', { href: '#/workflow/' + id }, id)),
      h('td', {}, j.step || ''), h('td', {}, j.type), h('td', {}, badge(j.status)), h('td', {}, when(j.created_at))));
    return [h('h1', {}, 'Workflows'), workflowLookup(''),
      h('h2', {}, 'Seen in the last 500 jobs'),
      table([['Workflow', 'num'], 'Latest step', 'Type', 'Its status', 'Created'], rows, 'No recent workflow jobs.')];
  }

  async function workflowView(id) {
    const { workflow: w } = await api('GET', 'workflows/' + encodeURIComponent(id));
    const rows = (w.steps || []).map((s) => h('tr', {},
      h('td', {}, s.name), h('td', { class: 'num' }, h('a', { href: '#/job/' + s.job_id }, s.job_id)),
      h('td', {}, s.type), h('td', {}, badge(s.status)), h('td', { class: 'num' }, s.attempts),
      h('td', {}, (s.depends_on || []).join(', ')), h('td', {}, when(s.started_at)), h('td', {}, when(s.finished_at)),
      h('td', { class: 'err', title: s.last_error || '' }, clip(s.last_error, 100))));
    const cancel = w.status === 'running'
      ? confirmButton('Cancel workflow', 'Click again to cancel', 'danger secondary', (b) =>
        act(b, () => api('POST', 'workflows/' + w.id + '/cancel'), 'Workflow ' + w.id + ' cancelled'))
      : null;
    return [h('h1', {}, 'Workflow ', String(w.id), ' ', w.name ? '(' + w.name + ') ' : '', badge(w.status)),
      workflowLookup(w.id), h('div', { class: 'toolbar' }, cancel,
        h('span', { class: 'muted' }, 'created ', when(w.created_at), w.finished_at ? [', finished ', when(w.finished_at)] : '')),
      table(['Step', ['Job', 'num'], 'Type', 'Status', ['Attempts', 'num'], 'Depends on', 'Started', 'Finished', 'Last error'],
        rows, 'No steps.')];
  }

  // ---- routing and refresh -------------------------------------------------

  const routes = {
    queues: () => queuesView(),
    jobs: (parts, params) => jobsView(params),
    job: (parts) => jobView(parts[1]),
    dead: (parts, params) => deadView(params),
    schedules: () => schedulesView(),
    workflows: () => workflowsView(),
    workflow: (parts) => workflowView(parts[1]),
  };

  let rendering = 0;

  async function render() {
    const { parts, params } = parseHash();
    const name = routes[parts[0]] ? parts[0] : 'queues';
    const navName = { job: 'jobs', workflow: 'workflows' }[name] || name;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === navName);
    const seq = ++rendering;
    let content;
    try {
      content = await routes[name](parts, params);
    } catch (e) {
      content = [h('h1', {}, 'Cannot load this page'), h('div', { class: 'empty' }, e.message)];
      if (e.status === 401) document.getElementById('token').focus();
    }
    if (seq !== rendering) return; // a newer render won
    view.replaceChildren(...[content].flat(Infinity).filter(Boolean));
    view.dataset.view = name;
    updated.textContent = 'Updated ' + new Date().toLocaleTimeString() + '.';
  }

  function autoRefresh() {
    const busy = document.activeElement && view.contains(document.activeElement) &&
      ['INPUT', 'SELECT', 'TEXTAREA'].includes(document.activeElement.tagName);
    if (document.getElementById('auto-refresh').checked && !document.hidden && !busy) render();
  }

  const tokenInput = document.getElementById('token');
  tokenInput.value = localStorage.getItem(TOKEN_KEY) || '';
  document.getElementById('token-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = tokenInput.value.trim();
    if (t) localStorage.setItem(TOKEN_KEY, t); else localStorage.removeItem(TOKEN_KEY);
    flash(t ? 'Token saved in this browser' : 'Token removed');
    render();
  });
  document.getElementById('token-forget').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    tokenInput.value = '';
    flash('Token removed from this browser');
    render();
  });

  window.addEventListener('hashchange', render);
  setInterval(autoRefresh, REFRESH_MS);
  render();
})();
