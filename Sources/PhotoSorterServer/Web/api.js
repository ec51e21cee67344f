// Talking to this service: one JSON request helper, its errors, and the page shown when the access token is missing.

import { h } from './dom.js';

class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
    this.reason = reason;
  }
}

export const isAbort = err => err && (err.name === 'AbortError');

/**
 * One JSON request to this service. Writes carry the CSRF marker header the server requires of browsers
 * (X-Photo-Sorter-Request) and always a JSON body. Errors are ApiError with the server's `reason`.
 * The access token, when one is required, travels as a cookie the server set: nothing to add here.
 */
export async function api(method, path, body, signal) {
  const init = { method, headers: { Accept: 'application/json' }, credentials: 'same-origin', signal };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.headers['X-Photo-Sorter-Request'] = '1';
    init.body = JSON.stringify(body === undefined ? {} : body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (err) {
    if (isAbort(err)) throw err;
    throw new ApiError(0, 'cannot reach the photo-sorter service');
  }
  const text = await res.text();
  let data = null;
  if (text) { try { data = JSON.parse(text); } catch { data = null; } }
  if (res.status === 401) {
    const reason = (data && data.reason) || 'access token required';
    // A 401 about the ML service's shared secret (a write on a service started with
    // PHOTO_SORTER_SHARED_SECRET) is not about the page's token: report it like any refusal.
    if (/X-Photo-Sorter-Secret/i.test(reason)) throw new ApiError(401, `refused: ${reason} (changes need the shared secret)`);
    showTokenWall();
    throw new ApiError(401, reason);
  }
  if (!res.ok) {
    const reason = (data && typeof data.reason === 'string' && data.reason) || text.slice(0, 300) || `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, reason);
  }
  return data;
}

let tokenWall = false;
let leavePage = () => {};

/** Whether the token page is up: nothing else is drawn after it. */
export const tokenWallShown = () => tokenWall;

/** What stops the page on screen when the token page goes up (the router's, set once at start-up). */
export function onTokenWall(fn) { leavePage = fn; }

function showTokenWall() {
  if (tokenWall) return;
  tokenWall = true;
  leavePage();
  document.body.classList.add('locked');
  document.body.append(h('section', { class: 'token-wall', 'data-testid': 'token-wall', role: 'alert' },
    h('div', { class: 'token-card' },
      h('h1', { text: 'Access token needed' }),
      h('p', { text: 'This photo-sorter needs its access token: open the link with ?token=…' }))));
}
