// Jobs: those running now (with their progress), and the history with filters.

import { get } from './api.js';
import { h, put, heading, table, status, time, secs, bytes, short, num } from './ui.js';

const STATUSES = ['', 'running', 'succeeded', 'failed', 'incomplete', 'interrupted', 'cancelled', 'skipped'];
const KINDS = ['', 'backup', 'restore', 'copy', 'drill', 'recover', 'archive', 'replicate', 'retention'];

function progressCell(j) {
  const p = j.progress;
  if (!p) return h('span.muted', 'starting…');
  const total = p.bytes_total || p.items_total;
  const done = p.bytes_total ? p.bytes : p.items;
  return h('div', total ? h('progress', { max: total, value: done, 'aria-label': `Progress of job ${j.id}` }) : null,
    h('span.muted', `${bytes(p.bytes)}${p.bytes_total ? ` of ${bytes(p.bytes_total)}` : ''}, ${p.items}${p.items_total ? ` of ${p.items_total}` : ''} ${p.unit}`));
}

function select(id, label, values, current) {
  return h('div.field', h('label', { for: id }, label),
    h('select', { id, name: id }, values.map((v) => h('option', { value: v, selected: v === current }, v || 'any'))));
}

export async function render(main, r, { signal }) {
  const q = r.query;
  const f = { status: q.get('status') || '', resource: q.get('resource') || '', plan: q.get('plan') || '', kind: q.get('kind') || '' };
  const params = new URLSearchParams({ limit: '200' });
  for (const k of ['status', 'resource', 'plan']) if (f[k]) params.set(k, f[k]);
  const [list, running, resources, plans] = await Promise.all([
    get(`/api/v1/jobs?${params}`), get('/api/v1/jobs?status=running&limit=50'),
    get('/api/v1/resources'), get('/api/v1/plans'),
  ]);
  if (signal.aborted) return;
  const history = list.filter((j) => !f.kind || j.kind === f.kind);
  const runningBox = h('div', { id: 'running' });
  const drawRunning = (rows) => runningBox.replaceChildren(table('Running jobs', ['Job', 'Kind', 'Resource', 'Started', 'Progress'],
    rows.map((j) => [h('a', { href: `#/jobs/${j.id}` }, String(j.id)), j.kind, j.resource || j.plan || '—', time(j.started), progressCell(j)]), 'No job is running.'));
  drawRunning(running);
  const form = h('form.filters', { 'aria-label': 'Filter the history' },
    select('status', 'Status', STATUSES, f.status),
    select('kind', 'Kind', KINDS, f.kind),
    select('resource', 'Resource', ['', ...resources.map((x) => x.name)], f.resource),
    select('plan', 'Plan', ['', ...plans.map((x) => x.name)], f.plan),
    h('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const n = new URLSearchParams();
    for (const k of ['status', 'kind', 'resource', 'plan']) { const v = form.elements[k].value; if (v) n.set(k, v); }
    location.hash = `#/jobs?${n}`;
  });
  put(main, ...heading('Jobs'), h('h2', 'Running now'), runningBox, h('h2', 'History'), form,
    table('Job history', ['Job', 'Kind', 'Resource', 'Plan', 'Trigger', 'Status', 'Started', ['Duration', 'num'], ['Bytes', 'num'], 'Point or error'],
      history.map((j) => h('tr', { 'data-testid': `job-${j.id}` },
        h('td', h('a', { href: `#/jobs/${j.id}` }, String(j.id))), h('td', j.kind), h('td', j.resource || '—'), h('td', j.plan || '—'),
        h('td', j.trigger), h('td', status(j.status)), h('td', time(j.started)), num(secs(j.duration_s)), num(bytes(j.bytes)),
        h('td', j.error ? h('span.error', j.error.length > 140 ? `${j.error.slice(0, 140)}…` : j.error) : short(j.point)))),
      'No job matches.'));
  // Running jobs' progress, every 2 s while the page is open.
  (async () => {
    while (!signal.aborted) {
      await new Promise((res) => setTimeout(res, 2000));
      if (signal.aborted) break;
      try { drawRunning(await get('/api/v1/jobs?status=running&limit=50')); } catch { break; }
    }
  })();
}
