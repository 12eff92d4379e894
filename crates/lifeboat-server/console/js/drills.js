// Drills and recoveries: each report with its RPO/RTO against the
// objectives and a timeline of its steps.

import { get } from './api.js';
import { h, put, heading, table, secs, time, status, yesno } from './ui.js';
import { startDrill } from './actions.js';

/** A timeline of a report's steps ({ steps, job }). */
export function timeline(rep) {
  const steps = rep.steps;
  if (!steps.length) return h('p.muted', 'No step timings recorded.');
  const end = Math.max(...steps.map((s) => s.at_s + s.duration_s), 0.001);
  // A member keeps its colour from one report to the next.
  const colour = (m) => [...(m || '')].reduce((a, c) => a + c.charCodeAt(0), 0) % 5;
  return h('figure.timeline', { 'aria-label': `Timeline of job ${rep.job.id}` },
    h('figcaption.visually-hidden', `Steps of job ${rep.job.id}, ${secs(end)} in all`),
    steps.map((s) => {
      const bar = h(`div.tl-bar.${s.member ? `m${colour(s.member)}` : 'none'}`, { title: `${s.step}: ${secs(s.duration_s)} from ${secs(s.at_s)}` });
      bar.style.left = `${(100 * s.at_s) / end}%`;
      bar.style.width = `${(100 * s.duration_s) / end}%`;
      return h('div.tl-row', h('span', `${s.member ? `${s.member}: ` : ''}${s.step} (${secs(s.duration_s)})`), h('div.tl-track', bar));
    }),
    h('div.tl-axis', { 'aria-hidden': 'true' }, h('span', '0 s'), h('span', secs(end / 2)), h('span', secs(end))));
}

/** Where each member's data came from (the whole report the job kept). */
function sources(r) {
  const rep = r.job.report && (r.kind === 'drill' ? r.job.report.recovery : r.job.report);
  if (!rep || !rep.sources || !rep.sources.length) return null;
  return h('details', h('summary', 'Sources'),
    table(`Sources of job ${r.job.id}`, ['Member', 'From', 'Point', 'Data from', 'Why'],
      rep.sources.map((x) => [x.member, `${x.from}${x.vault ? ` (${x.vault})` : ''}`, x.point ? x.point.slice(0, 10) : '—', time(x.data_time), x.why])));
}

function objective(a, target) {
  if (a === null || a === undefined) return '—';
  if (!target) return secs(a);
  return h(`span.badge.${a <= target ? 'ok' : 'bad'}`, `${secs(a)} of ${secs(target)}`);
}

export async function render(main) {
  const [stacks, reports] = await Promise.all([get('/api/v1/stacks'), get('/api/v1/reports?limit=30')]);
  const obj = Object.fromEntries(stacks.map((s) => [s.name, s.objectives]));
  put(main, ...heading('Drills and recoveries'),
    h('h2', 'Stacks'),
    table('Stacks and their drills', ['Stack', 'Members', 'Objectives', 'Verified', 'Drills', 'Action'],
      stacks.map((s) => [s.name, s.members.map((m) => m.name).join(', '),
        `RPO ${secs(s.objectives.rpo_s)}, RTO ${secs(s.objectives.rto_s)}`,
        [yesno(s.verification.compliant, 'verified', 'not verified'), s.verification.failed.length ? h('ul.why', s.verification.failed.map((f) => h('li', f))) : null],
        s.drills.map((d) => `${d.name} → ${d.site}${d.schedule ? ` (${d.schedule})` : ''}`).join('; ') || '—',
        h('div.row-actions', s.drills.length <= 1
          ? h('button', { type: 'button', onclick: () => startDrill(s, s.drills[0]) }, `Start drill of ${s.name}`)
          : s.drills.map((d) => h('button', { type: 'button', onclick: () => startDrill(s, d) }, `Start ${d.name}`)))]),
      'The file declares no stack.'),
    h('h2', 'Reports'),
    reports.length ? reports.map((r) => {
      const o = obj[r.stack] || {};
      return h('article.card', { 'data-testid': `report-${r.job.id}` },
        h('h3', `${r.kind === 'drill' ? 'Drill' : 'Recovery'} of ${r.stack || '—'}${r.job.report && r.job.report.site ? ` in site ${r.job.report.site}` : ''}, `, h('a', { href: `#/jobs/${r.job.id}` }, `job ${r.job.id}`), ' ', status(r.job.status)),
        h('dl', h('dt', 'Started'), h('dd', time(r.job.started)),
          h('dt', 'Result'), h('dd', r.passed === null ? '—' : (r.passed ? h('span.badge.ok', 'passed') : h('span.badge.bad', 'failed'))),
          h('dt', 'RPO'), h('dd', objective(r.rpo_s, o.rpo_s)),
          h('dt', 'RTO'), h('dd', objective(r.rto_s, o.rto_s))),
        r.job.error ? h('p.error', r.job.error) : null,
        timeline(r),
        sources(r));
    }) : h('p.empty', 'No drill or recovery yet.'));
}
