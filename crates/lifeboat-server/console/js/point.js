// One recovery point: its facts, its contents (a directory of a files point,
// a database's tables, a bucket's keys) and, for files, a restore form.

import { get, post } from './api.js';
import { h, put, heading, table, bytes, time, short, confirm, announce, num } from './ui.js';

const OVERWRITE = {
  '': 'refuse a target directory that is not empty',
  'if-changed': 'replace only files that differ',
  always: 'replace every existing file',
  never: 'keep every existing file',
};

function describe(vault, p) {
  return `point ${short(p.id)} (${p.resource}, ${new Date(p.time).toLocaleString()}, vault ${vault})`;
}

/** Confirms, then starts a restore; opens its job, or says why it was refused. */
async function startRestore(err, url, body, title, says) {
  if (!await confirm(title, says, 'Restore')) return;
  try {
    const s = await post(url, body);
    announce('Restore started');
    location.hash = s.jobs.length ? `#/jobs/${s.jobs[0]}` : '#/jobs';
  } catch (e) {
    err.textContent = `The restore was refused: ${e.message}`;
  }
}

function restoreForm(vault, p, path) {
  const err = h('p.error', { role: 'alert' });
  const pathIn = h('input', { id: 'restore-path', name: 'path', value: path, required: true, spellcheck: 'false' });
  const toIn = h('input', { id: 'restore-to', name: 'to', required: true, placeholder: '/var/tmp/restored', spellcheck: 'false' });
  const ow = h('select', { id: 'restore-overwrite', name: 'overwrite' },
    Object.entries(OVERWRITE).map(([v, label]) => h('option', { value: v }, `${v || 'refuse'}: ${label}`)));
  const form = h('form.restore', { id: 'restore-form', 'aria-labelledby': 'restore-title' },
    h('h2', { id: 'restore-title' }, 'Restore'),
    h('div.field', h('label', { for: 'restore-path' }, 'Path in the point'), pathIn),
    h('div.field', h('label', { for: 'restore-to' }, 'Into directory (absolute, on the server)'), toIn),
    h('div.field', h('label', { for: 'restore-overwrite' }, 'Existing files'), ow),
    h('button', { type: 'submit' }, 'Restore…'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const body = { vault, point: p.id, path: pathIn.value.trim(), to: toIn.value.trim() };
    if (ow.value) body.overwrite = ow.value;
    if (!body.to.startsWith('/')) { err.textContent = 'The target must be an absolute directory.'; toIn.focus(); return; }
    await startRestore(err, '/api/v1/restores', body, 'Restore from this point?', [
      `This restores ${body.path} of ${describe(vault, p)} into ${body.to} on the server.`,
      `Existing files: ${OVERWRITE[ow.value]}. The directory is created when missing. It runs as a job of kind restore.`,
    ]);
  });
  return form;
}

function dbRestoreForm(vault, p, database) {
  const err = h('p.error', { role: 'alert' });
  const dbIn = h('input', { id: 'restore-database', value: database, required: true, spellcheck: 'false' });
  const asIn = h('input', { id: 'restore-as', value: database ? `${database}_restored` : '', required: true, spellcheck: 'false' });
  const replace = h('input', { id: 'restore-replace', type: 'checkbox' });
  const form = h('form.restore', { id: 'restore-db-form', 'aria-labelledby': 'restore-db-title' },
    h('h2', { id: 'restore-db-title' }, 'Restore a database'),
    h('p.muted', `Into the server of resource ${p.resource}, under a new name, beside the live database.`),
    h('div.field', h('label', { for: 'restore-database' }, 'Database in the point'), dbIn),
    h('div.field', h('label', { for: 'restore-as' }, 'Restore as'), asIn),
    h('div.field.check', replace, h('label', { for: 'restore-replace' }, 'Replace it if it exists and is not empty')),
    h('button', { type: 'submit' }, 'Restore…'), err);
  dbIn.addEventListener('change', () => { if (!asIn.value) asIn.value = `${dbIn.value}_restored`; });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const body = { vault, point: p.id, database: dbIn.value.trim(), as: asIn.value.trim(), replace: replace.checked };
    await startRestore(err, '/api/v1/restores/database', body, 'Restore this database?', [
      `This restores database ${body.database} of ${describe(vault, p)} as ${body.as} on the server of resource ${p.resource}.`,
      body.replace
        ? `An existing ${body.as} is REPLACED.`
        : `An existing, non-empty ${body.as} is refused; nothing else on the server changes. It runs as a job of kind restore.`,
    ]);
  });
  return form;
}

function bucketRestoreForm(vault, p, prefix) {
  const err = h('p.error', { role: 'alert' });
  const toIn = h('input', { id: 'restore-bucket-to', required: true, placeholder: 'file:///srv/restored-assets', spellcheck: 'false' });
  const prefixIn = h('input', { id: 'restore-bucket-prefix', value: prefix, spellcheck: 'false' });
  const overwrite = h('input', { id: 'restore-bucket-overwrite', type: 'checkbox' });
  const form = h('form.restore', { id: 'restore-bucket-form', 'aria-labelledby': 'restore-bucket-title' },
    h('h2', { id: 'restore-bucket-title' }, 'Restore into a bucket'),
    h('div.field', h('label', { for: 'restore-bucket-to' }, 'Into bucket (file:///path or s3://bucket/…)'), toIn),
    h('div.field', h('label', { for: 'restore-bucket-prefix' }, 'Only keys starting with (empty: all)'), prefixIn),
    h('div.field.check', overwrite, h('label', { for: 'restore-bucket-overwrite' }, 'Write over a bucket that already holds objects')),
    h('button', { type: 'submit' }, 'Restore…'), err);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    err.textContent = '';
    const body = { vault, point: p.id, to: toIn.value.trim(), prefix: prefixIn.value, overwrite: overwrite.checked };
    await startRestore(err, '/api/v1/restores/bucket', body, 'Restore into this bucket?', [
      `This restores ${body.prefix ? `the keys under ${body.prefix}` : 'every key'} of ${describe(vault, p)} into ${body.to}.`,
      body.overwrite
        ? 'Objects of the same keys in the target are WRITTEN OVER; other keys are left as they are.'
        : 'A target that already holds objects (the live bucket among them) is refused. It runs as a job of kind restore.',
    ]);
  });
  return form;
}

/** Where a point comes from: a copy, an incremental one's base (linked), or full. */
function lineage(vault, p) {
  if (p.copied_from) return `copy of ${short(p.copied_from.point)}`;
  if (p.base) return ['incremental on ', h('a', { href: `#/points/${encodeURIComponent(vault)}/${p.base}` }, short(p.base))];
  if (p.parent) return `incremental after ${short(p.parent)}`;
  return 'full';
}

function join(dir, name) {
  if (name.startsWith('/')) return name;
  return `${dir.replace(/\/$/, '')}/${name}`;
}

export async function render(main, r) {
  const [vault, id] = r.args;
  const p = await get(`/api/v1/points/${encodeURIComponent(vault)}/${encodeURIComponent(id)}`);
  // What the point's protector says of its kind (`/kinds`): how its
  // contents are walked and how it is restored. Only a protector's main
  // point kind is walked and restored here.
  const kinds = await get('/api/v1/kinds');
  const d = kinds.find((k) => k.point_kinds.includes(p.kind)) || { point_kinds: [], browse: null, restore: 'command-only', command: `lifeboat restore ${p.kind}` };
  const main_kind = d.point_kinds[0] === p.kind;
  // A physical database point lists its files in two levels: the backup's
  // first level, then one directory's files.
  const physical = p.mode === 'physical';
  const browse = main_kind ? d.browse : (physical ? 'levels' : null);
  const files = browse === 'tree';
  const levels = browse === 'levels';
  const path = r.query.get('path') || (files ? (p.paths[0] || '/') : '');
  const q = files || levels ? (path ? `?path=${encodeURIComponent(path)}` : '') : (path ? `?prefix=${encodeURIComponent(path)}` : '');
  const contents = browse ? await get(`/api/v1/points/${encodeURIComponent(vault)}/${p.id}/contents${q}`) : null;
  const restore = main_kind ? d.restore : 'command-only';
  const here = (x) => `#/points/${encodeURIComponent(vault)}/${p.id}?path=${encodeURIComponent(x)}`;
  put(main, ...heading(`Point ${short(p.id)}`, [['Resources', '#/resources'], [p.resource, `#/resources/${encodeURIComponent(p.resource)}`], [short(p.id)]]),
    h('div.card', h('dl',
      h('dt', 'Resource'), h('dd', p.resource), h('dt', 'Kind'), h('dd', p.kind),
      h('dt', 'Time'), h('dd', time(p.time)), h('dt', 'Vault'), h('dd', p.vault),
      h('dt', 'Size'), h('dd', bytes(p.size)), h('dt', 'Host'), h('dd', p.host || '—'),
      ...(p.mode ? [h('dt', 'Mode'), h('dd', { 'data-testid': 'point-mode' }, p.mode)] : []),
      h('dt', 'Lineage'), h('dd', { 'data-testid': 'point-lineage' }, lineage(vault, p)),
      h('dt', 'Lock'), h('dd', p.lock ? `${p.lock.mode} until ${new Date(p.lock.retain_until).toLocaleString()}` : 'none'),
      h('dt', 'Consistency'), h('dd', p.consistency || '—'),
      h('dt', 'Tags'), h('dd', p.tags.join(', ') || '—'))));
  if (contents) {
    const up = files && path !== '/' ? path.replace(/\/[^/]*\/?$/, '') || '/' : null;
    put(main, h('h2', `Contents: ${contents.listing || 'every key'}`),
      up !== null ? h('p', h('a', { href: here(up) }, `Up to ${up}`)) : null,
      levels && path ? h('p', h('a', { href: here('') }, physical ? 'Up to the backup\'s first level' : `All ${d.levels[0]}s`)) : null,
      table(`Contents of ${contents.listing || 'every key'}`, ['Name', 'Kind', ['Size', 'num'], 'Modified', (files && restore === 'files') || (levels && !path && restore === 'database') ? 'Action' : null].filter(Boolean),
        contents.entries.map((e) => {
          const full = files ? join(path, e.name) : e.name;
          const shown = files ? full.split('/').pop() || full : e.name;
          const nameCell = (files && e.kind === 'dir') || (levels && !path && (!physical || e.kind === 'dir'))
            ? h('a', { href: here(full) }, shown) : shown;
          const cells = [h('td', nameCell), h('td', e.kind), num(bytes(e.size)), h('td', time(e.mtime))];
          if (levels && !path && restore === 'database') {
            cells.push(h('td', h('button.quiet', {
              type: 'button', 'aria-label': `Restore database ${e.name}`,
              onclick: () => {
                document.getElementById('restore-database').value = e.name;
                document.getElementById('restore-as').value = `${e.name}_restored`;
                document.getElementById('restore-as').focus();
              },
            }, 'Restore…')));
          }
          if (files && restore === 'files') {
            cells.push(h('td', h('button.quiet', {
              type: 'button', 'aria-label': `Restore ${full}`,
              onclick: () => { const f = document.getElementById('restore-path'); f.value = full; document.getElementById('restore-to').focus(); },
            }, 'Restore…')));
          }
          return h('tr', { 'data-testid': `entry-${shown}` }, cells);
        }), 'Empty.'),
      contents.truncated ? h('p.muted', 'Only the first entries are shown.') : null);
  }
  if (restore === 'files') put(main, restoreForm(vault, p, path));
  else if (restore === 'database') put(main, dbRestoreForm(vault, p, path));
  else if (restore === 'bucket') put(main, bucketRestoreForm(vault, p, path));
  else {
    // The command of this point's kind (a physical database point's names the point).
    const command = ((d.commands || {})[p.kind] || d.command).replace('POINT', short(p.id));
    put(main, h('p.muted', { 'data-testid': 'restore-command' }, `A ${p.kind} point is restored with \`${command}\`; the console restores files, database and bucket points.`));
  }
}
