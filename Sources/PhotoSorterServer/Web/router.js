// The page on screen: hash routes, each page render's route context (`ctx`), reloading after a write.
// Leaving a page aborts its reads, disconnects its observers and stops its timers (`ctx.dispose`), so a slow answer
// for an old page can never paint over the new one.

import { api, isAbort, onTokenWall, tokenWallShown } from './api.js';
import { h } from './dom.js';

/** The element every page draws into. */
export const view = document.getElementById('view');

let current = null; // the route context of the page on screen

function newCtx() {
  const ac = new AbortController();
  const cleanups = [];
  const ctx = {
    signal: ac.signal,
    alive: () => current === ctx && !ac.signal.aborted,
    get: path => api('GET', path, undefined, ac.signal),
    onCleanup: fn => cleanups.push(fn),
    listen(target, type, fn, opts) {
      target.addEventListener(type, fn, opts);
      cleanups.push(() => target.removeEventListener(type, fn, opts));
    },
    dispose() {
      ac.abort();
      for (const fn of cleanups.splice(0)) { try { fn(); } catch { /* keep disposing */ } }
    },
  };
  return ctx;
}

let routes = [];

/** Starts routing: `table` holds [pattern of location.hash, nav section, page(ctx, ...captures)]. */
export function startRouting(table) {
  routes = table;
  // The token page stops the page on screen for good.
  onTokenWall(() => { if (current) current.dispose(); current = null; });
  window.addEventListener('hashchange', router);
  if (!location.hash) history.replaceState(null, '', '#/people');
  router();
}

function router() {
  if (tokenWallShown()) return;
  const hash = location.hash || '#/people';
  const match = routes.map(([re, section, page]) => [hash.match(re), section, page]).find(([m]) => m);
  if (!match) { location.replace('#/people'); return; }
  const [m, section, page] = match;
  if (current) current.dispose();
  const ctx = current = newCtx();
  for (const a of document.querySelectorAll('.nav a')) a.classList.toggle('active', a.dataset.section === section);
  view.replaceChildren();
  view.dataset.page = hash.split('/')[1];
  window.scrollTo(0, 0);
  Promise.resolve(page(ctx, ...m.slice(1))).catch(err => {
    if (!ctx.alive() || isAbort(err) || tokenWallShown()) return;
    view.replaceChildren(errorBlock(err));
  });
}

/** Renders the current route again (after a write): the page re-reads everything it shows. */
export function reload() { router(); }

function errorBlock(err) {
  return h('div', { class: 'empty error-block', 'data-testid': 'page-error' },
    h('p', { class: 'empty-title', text: err.status === 404 ? 'Not found' : 'Something went wrong' }),
    h('p', { class: 'muted', text: err.reason || String(err) }),
    h('p', null, h('a', { href: '#/people', class: 'btn' }, 'Back to people')));
}
