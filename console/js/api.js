// @ts-check
/** The public API, with the signed-in user's access token.
 *
 *  The access token lives in this module's memory only (never in storage, never in a cookie); the refresh
 *  token is an httpOnly cookie the page cannot read (login with `refreshCookie: true`), used through
 *  POST /api/v1/auth/refresh with the X-CSRF-Token header copied from the `fxr_csrf` cookie. A reload
 *  therefore restores the session without the page ever holding the long-lived secret. */

/** @typedef {{type?: string, title?: string, status: number, detail?: string,
 *   errors?: {field: string, detail: string, code?: string}[]}} Problem */
/** @typedef {{ok: boolean, status: number, data: any, problem: Problem | null, headers: Headers}} Answer */
/** @typedef {{sub: string, broker_id: string, role: string, amr: string[], exp: number}} Claims */

let access = '';
/** @type {Claims | null} */
export let claims = null;
/** @type {ReturnType<typeof setTimeout> | undefined} */
let timer;
/** @type {Promise<boolean> | null} */
let refreshing = null;
/** @type {() => void} */
let onExpired = () => {};

/** @param {() => void} f called when the session ended (refresh refused) */
export function whenExpired(f) { onExpired = f; }

function csrf() {
  const m = document.cookie.match(/(?:^|;\s*)fxr_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : '';
}

/** @param {string} token */
function decode(token) {
  const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
}

/** @param {{accessToken: string, expiresIn: number}} pair */
function adopt(pair) {
  access = pair.accessToken;
  claims = decode(access);
  clearTimeout(timer);
  // Renew a minute before expiry (at least 10 s from now).
  timer = setTimeout(() => { refresh(); }, Math.max(10, pair.expiresIn - 60) * 1000);
}

/** @param {Response} r @returns {Promise<Answer>} */
async function answer(r) {
  const type = r.headers.get('content-type') || '';
  let data = null;
  if (type.includes('json')) data = await r.json().catch(() => null);
  else if (r.status !== 204) data = await r.blob();
  const problem = r.ok ? null : (data && typeof data === 'object' && 'status' in data ? data : { status: r.status, title: r.statusText });
  return { ok: r.ok, status: r.status, data, problem, headers: r.headers };
}

/** A refresh through the cookie; true when a new access token arrived. Concurrent callers share one. */
export function refresh() {
  if (!csrf()) return Promise.resolve(false); // no session cookie: nothing to refresh
  if (!refreshing) {
    refreshing = fetch('/api/v1/auth/refresh', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() }, body: '{}',
    }).then(async (r) => {
      if (!r.ok) { access = ''; claims = null; return false; }
      adopt(await r.json());
      return true;
    }).catch(() => false).finally(() => { refreshing = null; });
  }
  return refreshing;
}

/**
 * @param {{broker: string, email: string, password: string, totpCode?: string, recoveryCode?: string}} body
 * @returns {Promise<Answer>}
 */
export async function login(body) {
  const r = await fetch('/api/v1/auth/token', {
    method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ ...body, refreshCookie: true }),
  });
  const a = await answer(r);
  if (a.ok) adopt(a.data);
  return a;
}

/** @param {boolean} everywhere */
export async function logout(everywhere) {
  await fetch('/api/v1/auth/logout', {
    method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': csrf() }, body: JSON.stringify({ everywhere }),
  }).catch(() => null);
  access = ''; claims = null; clearTimeout(timer);
}

export const signedIn = () => !!access;
export const hasMfa = () => !!claims && claims.amr.includes('otp');

/**
 * One API call. Mutations carry an Idempotency-Key, so a retry after a lost answer does the work once.
 * @param {string} method
 * @param {string} path
 * @param {any} [body]
 * @param {{contentType?: string}} [o]
 * @returns {Promise<Answer>}
 */
export async function api(method, path, body, o = {}) {
  /** @param {boolean} again */
  const go = async (again) => {
    /** @type {Record<string, string>} */
    const headers = { Accept: 'application/json, application/problem+json' };
    if (access) headers.Authorization = `Bearer ${access}`;
    if (body !== undefined) headers['Content-Type'] = o.contentType || 'application/json';
    if (method !== 'GET') headers['Idempotency-Key'] = crypto.randomUUID();
    const r = await fetch(path, { method, headers, credentials: 'omit', body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401 && again && access) {
      if (await refresh()) return go(false);
      onExpired();
    }
    return answer(r);
  };
  try {
    return await go(true);
  } catch (e) {
    return { ok: false, status: 0, data: null, headers: new Headers(),
      problem: { status: 0, title: 'network', detail: 'The API could not be reached (network error).' } };
  }
}
