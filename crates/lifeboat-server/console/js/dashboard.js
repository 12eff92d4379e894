// Dashboard: every stack and resource with its protection status at a glance.

import { get } from './api.js';
import { h, put, heading, table, yesno, secs, ago, status, num, time } from './ui.js';
import { runPlan, startDrill } from './actions.js';

function control(r, prefix) {
  return r.controls.filter((c) => c.name === prefix || c.name.startsWith(`${prefix}:`));
}

/** Controls as badges; a copy control names its vault (`copy:PLAN:VAULT`), a lock its vault. */
function controlCell(list) {
  if (!list.length) return h('span.muted', '—');
  return list.map((c) => {
    const parts = c.name.split(':');
    const where = parts[0] === 'copy' ? parts.slice(2).join(':') : (parts[0] === 'lock' ? parts.slice(1).join(':') : '');
    return h('div', where ? h('strong', `${where}: `) : null, h(`span.badge.${c.ok ? 'ok' : 'bad'}`, c.ok ? 'ok' : 'no'), ' ', c.detail);
  });
}

function objective(achieved, target) {
  if (achieved === null || achieved === undefined) return '—';
  const text = `${secs(achieved)}${target ? ` of ${secs(target)}` : ''}`;
  if (!target) return text;
  return h(`span.badge.${achieved <= target ? 'ok' : 'bad'}`, text);
}

function stackCard(s) {
  const v = s.verification;
  return h('article.card', { 'aria-labelledby': `stack-${s.name}` },
    h('h3', { id: `stack-${s.name}` }, `Stack ${s.name} `, yesno(v.compliant, 'verified', 'not verified')),
    h('dl',
      h('dt', 'Members'), h('dd', s.members.map((m, i) => [i ? ', ' : '', h('a', { href: `#/resources/${encodeURIComponent(m.name)}` }, m.name), m.compliant ? '' : ' (not compliant)'])),
      h('dt', 'RPO exposure'), h('dd', { 'data-testid': `exposure-${s.name}` }, s.exposure.length
        ? s.exposure.map((e, i) => [i ? h('br') : null, `${e.site}: `, e.seconds === null ? h('span.badge.bad', e.error || 'cannot recover') : objective(e.seconds, s.objectives.rpo_s)])
        : '—'),
      h('dt', 'Last drill'), h('dd', v.last_drill_job ? [h('a', { href: `#/jobs/${v.last_drill_job}` }, `job ${v.last_drill_job}`), ' ', ago(v.last_drill_at), ' ', v.passed ? h('span.badge.ok', 'passed') : h('span.badge.bad', 'failed')] : 'never'),
      h('dt', 'Drill RPO'), h('dd', objective(v.rpo_s, s.objectives.rpo_s)),
      h('dt', 'Drill RTO'), h('dd', objective(v.rto_s, s.objectives.rto_s))),
    v.failed.length ? h('ul.why', v.failed.map((f) => h('li', f))) : null,
    s.exposure.length ? h('details', h('summary', 'Exposure per member'),
      table(`RPO exposure of stack ${s.name} per site and member`, ['Site', 'Member', 'Newest data held', 'Exposure'],
        s.exposure.flatMap((e) => e.members.map((m) => [e.site, m.member, m.data_time ? time(m.data_time) : 'none',
          m.seconds === null ? h('span.badge.bad', 'nothing held') : secs(m.seconds)])))) : null,
    h('div.row-actions', s.drills.length <= 1
      ? h('button', { type: 'button', onclick: () => startDrill(s, s.drills[0]) }, `Start drill of ${s.name}`)
      : s.drills.map((d) => h('button', { type: 'button', onclick: () => startDrill(s, d) }, `Start drill ${d.name}`))));
}

/** Everything below the heading, from the API now. */
async function content() {
  const [stacks, resources, replication, plans, running] = await Promise.all([
    get('/api/v1/stacks'), get('/api/v1/resources'), get('/api/v1/replication'),
    get('/api/v1/plans'), get('/api/v1/jobs?status=running&limit=20'),
  ]);
  const bad = resources.filter((r) => !r.compliant).length;
  return h('div', { id: 'dashboard-body' },
    h('p', { 'data-testid': 'summary' }, resources.length
      ? (bad ? h('span.badge.bad', `${bad} of ${resources.length} resources not compliant`) : h('span.badge.ok', `all ${resources.length} resources compliant`))
      : 'The file declares no resource.',
    ' ', h('span.muted', `as of ${new Date().toLocaleTimeString()}, refreshed every ${REFRESH_S} s`)),
    stacks.length ? [h('h2', 'Stacks'), h('div.grid', stacks.map(stackCard))] : null,
    h('h2', 'Resources'),
    table('Resources and their protection', ['Resource', 'Kind', 'Status', 'Newest point vs schedule', 'Copies', 'Lock', 'Archive lag'],
      resources.map((r) => {
        const why = r.controls.filter((c) => !c.ok);
        return h('tr', { 'data-testid': `resource-${r.name}` },
          h('td', h('a', { href: `#/resources/${encodeURIComponent(r.name)}` }, r.name)),
          h('td', r.kind),
          h('td', yesno(r.compliant), why.length ? h('ul.why', why.map((c) => h('li', `${c.name}: ${c.detail}`))) : null),
          h('td', r.newest_point ? [ago(r.newest_point.time), h('br'), controlCell(control(r, 'rpo'))] : h('span.badge.bad', 'no point yet')),
          h('td', controlCell(control(r, 'copy'))),
          h('td', controlCell(control(r, 'lock'))),
          h('td', controlCell(control(r, 'archive'))));
      }), 'The file declares no resource.'),
    h('h2', 'Plans'),
    table('Plans', ['Plan', 'Resources', 'Vault', 'Next run', 'Action'],
      plans.map((p) => [p.name, p.resources.join(', '), p.copies.length ? `${p.vault} → ${p.copies.join(', ')}` : p.vault, time(p.next_run),
        h('button', { type: 'button', onclick: () => runPlan(p), 'data-testid': `run-${p.name}` }, `Run ${p.name} now`)])),
    h('h2', 'Replication'),
    table('Replication rules', ['Rule', 'From → to', 'Running', ['Lag p99', 'num'], ['Backlog', 'num']],
      replication.map((x) => [h('a', { href: '#/replication' }, x.name), `${x.from} → ${x.to}`,
        x.running ? h('span.badge.ok', 'running') : h('span.badge.warn', 'not running'),
        num(secs(x.lag_p99_s)), num(x.backlog_objects === null ? '—' : `${x.backlog_objects} objects`)]), 'No replication rule.'),
    h('h2', 'Running jobs'),
    table('Running jobs', ['Job', 'Kind', 'Resource', 'Status', 'Started'],
      running.map((j) => [h('a', { href: `#/jobs/${j.id}` }, String(j.id)), j.kind, j.resource || '—', status(j.status), ago(j.started)]), 'No job is running.'),
  );
}

const REFRESH_S = 30;

export async function render(main, _r, { signal }) {
  const first = await content();
  if (signal.aborted) return;
  put(main, ...heading('Dashboard'), first);
  // Refresh in place, unless the user is working inside it (focus or a dialog).
  (async () => {
    for (;;) {
      await new Promise((res) => setTimeout(res, REFRESH_S * 1000));
      if (signal.aborted) return;
      const old = document.getElementById('dashboard-body');
      if (!old || old.contains(document.activeElement) || document.getElementById('confirm').open) continue;
      try {
        const fresh = await content();
        if (!signal.aborted) old.replaceWith(fresh);
      } catch { return; }
    }
  })();
}
