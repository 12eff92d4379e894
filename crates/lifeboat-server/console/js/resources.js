// Resources, and one resource's recovery points.

import { get } from './api.js';
import { h, put, heading, table, yesno, bytes, ago, short, time, num } from './ui.js';

function pointLink(p) {
  return h('a', { href: `#/points/${encodeURIComponent(p.vault)}/${p.id}` }, short(p.id));
}

function lineage(p) {
  if (p.copied_from) return `copy of ${short(p.copied_from.point)}`;
  if (p.base) return `incremental on ${short(p.base)}`;
  if (p.parent) return `after ${short(p.parent)}`;
  return 'full';
}

/** A point's kind, with a database point's mode (logical or physical). */
function kindOf(p) {
  return p.mode ? `${p.kind} (${p.mode})` : p.kind;
}

function lock(p) {
  if (!p.lock) return h('span.muted', 'none');
  return h(`span.badge.${p.lock.active ? 'ok' : 'none'}`, `${p.lock.mode} until ${new Date(p.lock.retain_until).toLocaleDateString()}`);
}

export async function render(main, r) {
  if (r.page === 'resources') {
    const list = await get('/api/v1/resources');
    put(main, ...heading('Resources'),
      table('Resources', ['Resource', 'Kind', 'Site', 'Plans', 'Status', 'Newest point'],
        list.map((x) => [h('a', { href: `#/resources/${encodeURIComponent(x.name)}` }, x.name), x.kind, x.site || '—',
          x.plans.join(', ') || '—', yesno(x.compliant),
          x.newest_point ? [pointLink(x.newest_point), ' ', ago(x.newest_point.time)] : 'none']), 'The file declares no resource.'));
    return;
  }
  const name = r.args[0];
  const [resources, pts] = await Promise.all([
    get('/api/v1/resources'),
    get(`/api/v1/resources/${encodeURIComponent(name)}/points?limit=200`),
  ]);
  const res = resources.find((x) => x.name === name);
  put(main, ...heading(`Resource ${name}`, [['Resources', '#/resources'], [name]]));
  if (res) {
    put(main, h('p', `${res.kind}${res.site ? `, site ${res.site}` : ''}; plans: ${res.plans.join(', ') || 'none'}. `, yesno(res.compliant)),
      table('Compliance controls', ['Control', 'Met', 'Detail'],
        res.controls.map((c) => [c.name, c.ok ? h('span.badge.ok', 'yes') : h('span.badge.bad', 'no'), c.detail])));
  }
  put(main, h('h2', 'Recovery points'),
    pts.unreadable.length ? h('p.error', pts.unreadable.map((u) => `vault ${u.vault}: ${u.error}`).join('; ')) : null,
    table(`Recovery points of ${name}`, ['Point', 'Time', 'Kind', 'Vault', ['Size', 'num'], 'Lineage', 'Lock', 'Consistency'],
      pts.points.map((p) => h('tr', { 'data-testid': `point-${p.id}` },
        h('td', pointLink(p)), h('td', time(p.time)), h('td', kindOf(p)), h('td', p.vault), num(bytes(p.size)),
        h('td', lineage(p)), h('td', lock(p)), h('td', p.consistency || '—'))), 'No recovery point yet.'));
}
