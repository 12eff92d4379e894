// The API client: the token lives in sessionStorage (this tab only; never in
// a URL, never in localStorage) and goes out as `Authorization: Bearer`.
// A 401 anywhere sends the user back to the login form.

const KEY = 'lifeboat-token';

export class Refused extends Error {}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

let onRefused = () => {};
export function whenRefused(f) { onRefused = f; }

function headers(extra = {}) {
  return { Authorization: `Bearer ${token.get() || ''}`, ...extra };
}

async function check(r) {
  if (r.status === 401) {
    token.clear();
    onRefused();
    throw new Refused('the token was refused');
  }
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).error || msg; } catch { /* not JSON */ }
    const e = new Error(msg);
    e.status = r.status;
    throw e;
  }
  return r;
}

/** GET a JSON route. */
export async function get(path) {
  const r = await fetch(path, { headers: headers(), cache: 'no-store' });
  return (await check(r)).json();
}

/** POST a JSON body; answers the JSON reply. */
export async function post(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return (await check(r)).json();
}

/**
 * Follows a job's server-sent events. EventSource cannot send a header,
 * so the stream is read with fetch() and parsed here (text/event-stream:
 * `event:` and `data:` lines, a blank line ends an event).
 * Calls onEvent(name, data) per event; resolves when the stream ends.
 */
export async function follow(jobId, onEvent, signal) {
  const r = await check(await fetch(`/api/v1/jobs/${jobId}/events`, {
    headers: headers({ Accept: 'text/event-stream' }), signal, cache: 'no-store',
  }));
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let name = 'message';
  let data = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl).replace(/\r$/, '');
      buf = buf.slice(nl + 1);
      if (line === '') {
        if (data.length) {
          const text = data.join('\n');
          let v = text;
          try { v = JSON.parse(text); } catch { /* a log line */ }
          onEvent(name, v);
        }
        name = 'message';
        data = [];
      } else if (line.startsWith(':')) {
        // keep-alive comment
      } else if (line.startsWith('event:')) {
        name = line.slice(6).trim();
      } else if (line.startsWith('data:')) {
        data.push(line.slice(5).replace(/^ /, ''));
      }
    }
  }
}
