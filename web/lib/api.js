// api — the HTTP client of /api (web/openapi.json).  Every state-changing
// request carries the session's CSRF token in X-CSRF-Token.

let csrf = null;
let onUnauthenticated = null;

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message || code || `HTTP ${status}`);
    this.status = status; this.code = code; this.retryAfter = retryAfter;
  }
}

export function setCsrf(token) { csrf = token; }
export function onLoggedOut(fn) { onUnauthenticated = fn; }

export async function request(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrf) headers['X-CSRF-Token'] = csrf;
  let res;
  try {
    res = await fetch(path, {
      method, headers, credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'network', e.message);
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (!res.ok) {
    const e = (data && data.error) || {};
    const err = new ApiError(res.status, e.code, e.message, Number(res.headers.get('Retry-After')) || null);
    if (res.status === 401 && path !== '/api/login' && path !== '/api/me' && onUnauthenticated) onUnauthenticated();
    throw err;
  }
  return data;
}

export const api = {
  get: (p) => request('GET', p),
  post: (p, b) => request('POST', p, b === undefined ? {} : b),
  put: (p, b) => request('PUT', p, b),
  patch: (p, b) => request('PATCH', p, b),
  del: (p) => request('DELETE', p),
};

// Path of a team-scoped resource: teamPath(1, 'reports', id).
export function teamPath(team, ...parts) {
  return `/api/teams/${encodeURIComponent(team)}${parts.map((p) => `/${encodeURIComponent(p)}`).join('')}`;
}

export function wsUrl(path) {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${path}`;
}
