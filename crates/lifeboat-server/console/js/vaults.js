// Vaults: figures (logical vs stored, dedup and compression) and lock configuration.

import { get } from './api.js';
import { h, put, heading, bytes, time } from './ui.js';

function ratio(x) { return x ? `${Number(x).toFixed(2)}×` : '—'; }

function card(v) {
  const s = v.stats;
  const l = v.lock;
  const d = v.declared_lock;
  return h('article.card', { 'aria-labelledby': `vault-${v.name}`, 'data-testid': `vault-${v.name}` },
    h('h2', { id: `vault-${v.name}` }, `Vault ${v.name}`),
    h('p.mono', v.location),
    v.error ? h('p.error', v.error) : null,
    s ? h('dl',
      h('dt', 'Site'), h('dd', v.site || '—'),
      h('dt', 'Points'), h('dd', `${s.points}${s.points_damaged ? ` (${s.points_damaged} damaged)` : ''}`),
      h('dt', 'Logical'), h('dd', bytes(s.logical_bytes)),
      h('dt', 'Stored'), h('dd', bytes(s.stored_bytes)),
      h('dt', 'Dedup'), h('dd', ratio(s.dedup_ratio)),
      h('dt', 'Compression'), h('dd', ratio(s.compression_ratio)),
      h('dt', 'Overall'), h('dd', ratio(s.total_ratio)),
      h('dt', 'Packs'), h('dd', `${s.packs}${s.packs_obsolete ? ` (${s.packs_obsolete} obsolete)` : ''}`),
      h('dt', 'Locked points'), h('dd', `${s.locked_points}${s.locked_compliance ? ` (${s.locked_compliance} compliance)` : ''}`),
      h('dt', 'Earliest unlock'), h('dd', time(s.earliest_unlock))) : null,
    h('h3', 'Lock'),
    h('dl',
      h('dt', 'In the vault'), h('dd', l && l.configured
        ? `${l.mode}, retention ${l.min_retention_s ?? '—'} s .. ${l.max_retention_s ?? '—'} s${l.immutable ? ', immutable' : ''}`
        : 'not configured'),
      h('dt', 'In the file'), h('dd', d ? `${d.mode}, min ${d.min_retention || '—'}, max ${d.max_retention || '—'}` : 'none')));
}

export async function render(main) {
  const vaults = await get('/api/v1/vaults');
  put(main, ...heading('Vaults'), vaults.length ? h('div.grid', vaults.map(card)) : h('p.empty', 'The file declares no vault.'));
}
