// One job: its facts, error and log; while it runs, live progress from its
// event stream (read with fetch(), since EventSource cannot send the token).

import { get, follow } from './api.js';
import { h, put, heading, status, time, secs, bytes, short, announce } from './ui.js';
import { cancelJob } from './actions.js';
import { timeline } from './drills.js';

export async function render(main, r, { signal }) {
  const id = Number(r.args[0]);
  let job = await get(`/api/v1/jobs/${id}`);
  if (signal.aborted) return;
  const statusEl = h('span', { id: 'job-status', 'data-status': job.status }, status(job.status));
  const facts = h('dl');
  const prog = h('div', { id: 'job-progress' });
  const errorEl = h('div', { id: 'job-error' });
  const report = h('div', { id: 'job-report' });
  const log = h('pre.log', { id: 'job-log', tabindex: 0, 'aria-label': `Log of job ${id}` });
  const cancelBtn = h('button.danger', { type: 'button', hidden: job.status !== 'running' }, 'Cancel job…');
  cancelBtn.addEventListener('click', async () => { if (await cancelJob(job)) cancelBtn.disabled = true; });

  // A backup's point: its mode (a database point: logical or physical, an
  // incremental one's base), read once the job names its point.
  let mode = null;
  async function readMode(j) {
    if (mode !== null || j.kind !== 'backup' || !j.point || !j.vault) return;
    mode = '';
    try {
      const p = await get(`/api/v1/points/${encodeURIComponent(j.vault)}/${j.point}`);
      if (p.mode) mode = p.base ? `${p.mode}, incremental on ${short(p.base)}` : (p.mode === 'physical' ? 'physical, full' : p.mode);
    } catch { /* the point's vault is out of reach: no mode shown */ }
    if (mode && !signal.aborted) draw(job);
  }
  function draw(j) {
    job = j;
    statusEl.dataset.status = j.status;
    statusEl.replaceChildren(status(j.status));
    cancelBtn.hidden = j.status !== 'running';
    const point = j.point && j.vault ? h('a', { href: `#/points/${encodeURIComponent(j.vault)}/${j.point}`, 'data-testid': 'job-point' }, short(j.point)) : short(j.point);
    facts.replaceChildren(
      h('dt', 'Kind'), h('dd', j.kind), h('dt', 'Resource'), h('dd', j.resource || '—'),
      h('dt', 'Plan'), h('dd', j.plan || '—'), h('dt', 'Trigger'), h('dd', j.trigger),
      h('dt', 'Vault'), h('dd', j.vault || '—'), h('dt', 'Started'), h('dd', time(j.started)),
      h('dt', 'Ended'), h('dd', time(j.ended)), h('dt', 'Duration'), h('dd', { id: 'job-duration' }, secs(j.duration_s)),
      h('dt', 'Bytes'), h('dd', bytes(j.bytes)), h('dt', 'Point'), h('dd', point),
      ...(mode ? [h('dt', 'Mode'), h('dd', { 'data-testid': 'job-mode' }, mode)] : []),
      h('dt', 'Process'), h('dd', String(j.pid)));
    readMode(j);
    errorEl.replaceChildren(...(j.error ? [h('h2', 'Error'), h('p.error', { 'data-testid': 'job-error' }, j.error)] : []));
    // A drill's or recovery's whole report: its steps on a timeline.
    const rec = j.report && (j.kind === 'drill' ? j.report.recovery : j.report);
    report.replaceChildren(...(rec && rec.steps ? [h('h2', 'Steps'),
      h('p', `RPO ${secs(rec.rpo_s)}, RTO ${secs(rec.rto_s)}`), timeline({ steps: rec.steps, job: j })] : []));
    if (j.status !== 'running') {
      log.textContent = j.log || '(no log)';
      prog.replaceChildren();
    }
  }
  function drawProgress(p) {
    const total = p.bytes_total || p.items_total;
    const done = p.bytes_total ? p.bytes : p.items;
 prog.replaceChildren(h('div', h('h2', 'Progress'),
      total ? h('progress', { max: total, value: done, 'aria-label': 'Progress' }) : null,
      h('p', `${bytes(p.bytes)}${p.bytes_total ? ` of ${bytes(p.bytes_total)}` : ''}; ${p.items}${p.items_total ? ` of ${p.items_total}` : ''} ${p.unit}`)));
  }

  // The other jobs of the same process (a plan's run records one per resource).
  const siblings = h('div', { id: 'job-siblings' });
  async function drawSiblings() {
    if (!job.plan) return;
    const list = (await get(`/api/v1/jobs?plan=${encodeURIComponent(job.plan)}&limit=50`))
      .filter((x) => x.pid === job.pid && x.id !== job.id && x.trigger === job.trigger)
      .sort((a, b) => a.id - b.id);
    siblings.replaceChildren(...(list.length ? [h('h2', 'The other jobs of this run'),
      h('ul', list.map((x) => h('li', h('a', { href: `#/jobs/${x.id}` }, `job ${x.id}`), ` ${x.kind} of ${x.resource || '—'} `, status(x.status))))] : []));
  }
  put(main, ...heading(`Job ${id}`, [['Jobs', '#/jobs'], [String(id)]]),
    h('p', 'Status: ', statusEl, ' ', cancelBtn),
    h('div.card', facts), prog, errorEl, report, siblings, h('h2', 'Log'), log);
  draw(job);
  drawSiblings().catch(() => {});
  if (job.status === 'running') {
    log.textContent = 'The log is shown when the job ends.';
    // The duration counts while the job runs.
    const tick = setInterval(() => {
      const d = document.getElementById('job-duration');
      if (signal.aborted || job.status !== 'running' || !d) { clearInterval(tick); return; }
      d.textContent = secs((Date.now() - new Date(job.started).getTime()) / 1000);
    }, 1000);
    follow(id, (name, data) => {
      if (name === 'progress') drawProgress(data);
      else if (name === 'status') draw(data);
      else if (name === 'end') { draw(data); announce(`Job ${id} ${data.status}`); drawSiblings().catch(() => {}); }
    }, signal).catch(async () => {
      if (!signal.aborted) { try { draw(await get(`/api/v1/jobs/${id}`)); } catch { /* gone */ } }
    });
  }
}
