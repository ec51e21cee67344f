// Pieces the pages share: toasts, error reports, dialogs, the person picker, debounce, the infinite-scroll pager.

import { api, isAbort, tokenWallShown } from './api.js';
import { h, nameNode, personThumb, thumb } from './dom.js';
import { personName, plural, yearsText } from './format.js';

// ------------------------------------------------------------------ toasts and dialogs

const toasts = document.getElementById('toasts');

export function toast(message, kind = 'info', timeoutMs) {
  const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast',
                        'data-kind': kind, text: message });
  el.addEventListener('click', () => el.remove());
  toasts.append(el);
  while (toasts.children.length > 4) toasts.firstElementChild.remove();
  setTimeout(() => el.remove(), timeoutMs || (kind === 'error' ? 9000 : 4000));
  return el;
}

export function showError(err, prefix) {
  if (isAbort(err) || tokenWallShown()) return; // aborted reads are expected; a missing token has its own page
  const reason = err && err.reason ? err.reason : String(err && err.message || err);
  toast(prefix ? `${prefix}: ${reason}` : reason, 'error');
}

/** A modal built on <dialog>: Escape and the backdrop close it. Resolves with what `build` passes to `close`. */
function modal(build, { testid, wide } = {}) {
  return new Promise(resolve => {
    const dlg = h('dialog', { class: 'modal' + (wide ? ' wide' : ''), 'data-testid': testid });
    let result = null;
    const close = value => { result = value; dlg.close(); };
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    dlg.addEventListener('click', e => { if (e.target === dlg) close(null); }); // click on the backdrop
    build(dlg, close);
    document.body.append(dlg);
    dlg.showModal();
    const focus = dlg.querySelector('[autofocus]');
    if (focus) focus.focus();
  });
}

export function confirmDialog({ title, body, ok = 'OK', danger = false }) {
  return modal((dlg, close) => {
    dlg.append(
      h('h2', { class: 'modal-title', text: title }),
      h('p', { class: 'modal-body', text: body }),
      h('div', { class: 'modal-actions' },
        h('button', { class: 'btn', type: 'button', 'data-testid': 'confirm-cancel', onclick: () => close(false) }, 'Cancel'),
        h('button', { class: 'btn ' + (danger ? 'danger' : 'primary'), type: 'button', autofocus: true,
                      'data-testid': 'confirm-ok', onclick: () => close(true) }, ok)));
  }, { testid: 'confirm-dialog' }).then(Boolean);
}

/**
 * Picks a visible person by name (GET /persons?name=) or by id ("#12" or "12": GET /person/12), with thumbnails.
 * Resolves with the person (a PersonSummary or PersonView: both have the fields used here) or null.
 */
export function pickPerson({ title, excludeId, exclude, hint }) {
  const excluded = new Set(exclude || []);
  if (excludeId != null) excluded.add(excludeId);
  return modal((dlg, close) => {
    const input = h('input', { type: 'search', class: 'input', placeholder: 'Search by name or #id…', autofocus: true,
                               'data-testid': 'picker-search', 'aria-label': 'Search people' });
    const list = h('ul', { class: 'picker-list', 'data-testid': 'picker-list' });
    const status = h('p', { class: 'muted small picker-status' });
    let seq = 0, ac = null;
    async function search() {
      const mine = ++seq;
      if (ac) ac.abort();
      ac = new AbortController();
      const text = input.value.trim();
      const byId = text.match(/^#?(\d+)$/);
      const q = new URLSearchParams({ limit: '60', min_photos: '1' }); // anyone may be picked, one-photo people too
      if (text) q.set('name', text);
      status.textContent = 'Searching…';
      try {
        let found;
        if (byId) {
          // An id: that person (a merged id answers with its survivor); hidden persons cannot be picked.
          const p = await api('GET', `/person/${byId[1]}`, undefined, ac.signal).catch(err => {
            if (err.status === 404 || err.status === 422) return null;
            throw err;
          });
          found = p && !p.hidden ? [p] : [];
        } else {
          found = (await api('GET', '/persons?' + q, undefined, ac.signal)).persons;
        }
        if (mine !== seq) return;
        const frag = document.createDocumentFragment();
        for (const p of found) {
          if (excluded.has(p.person_id)) continue;
          frag.append(h('li', null, h('button', {
            type: 'button', class: 'picker-item', 'data-testid': 'picker-item', 'data-person-id': p.person_id,
            onclick: () => close(p),
          }, thumb(personThumb(p.person_id, p.cover_face_id), 48, personName(p), 'round s48'),
            h('span', { class: 'picker-text' }, nameNode(p, { withId: true }),
              h('span', { class: 'muted small',
                          text: [`#${p.person_id}`, plural(p.photo_count, 'photo'), yearsText(p.first_taken, p.last_taken)]
                            .filter(Boolean).join(' · ') })))));
        }
        list.replaceChildren(frag);
        status.textContent = list.children.length ? '' : 'No one matches.';
      } catch (err) {
        if (!isAbort(err)) { status.textContent = ''; showError(err); }
      }
    }
    input.addEventListener('input', debounce(search, 200));
    input.addEventListener('keydown', e => {
      // preventDefault: the Enter must not go on to press the button that gets the focus once the dialog closes.
      if (e.key === 'Enter') { e.preventDefault(); const first = list.querySelector('.picker-item'); if (first) first.click(); }
    });
    dlg.append(h('h2', { class: 'modal-title', text: title }), hint ? h('p', { class: 'muted small', text: hint }) : null,
      input, status, list,
      h('div', { class: 'modal-actions' },
        h('button', { class: 'btn', type: 'button', 'data-testid': 'picker-cancel', onclick: () => close(null) }, 'Cancel')));
    dlg.addEventListener('close', () => { if (ac) ac.abort(); });
    search();
  }, { testid: 'picker', wide: true });
}

export function debounce(fn, ms) {
  let t = 0;
  return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
}

// ------------------------------------------------------------------ infinite scroll

/**
 * Infinite scroll: calls `loadMore()` (→ true while there is more) whenever the sentinel comes within
 * ~1.5 screens of the viewport. IntersectionObserver only reports changes, so after each page the sentinel is
 * observed again: if it is still visible (a short page), the observer fires again at once.
 * The first page is asked for at once rather than on the observer's first report, which only comes after the
 * browser's next rendering (a few hundred ms on a busy machine): the first paint of the grid waits for nothing.
 */
export function pager(ctx, sentinel, loadMore) {
  let loading = false, finished = false;
  const io = new IntersectionObserver(entries => {
    if (entries.some(e => e.isIntersecting)) pump();
  }, { rootMargin: '0px 0px 1200px 0px' });
  async function pump() {
    if (loading || finished || !ctx.alive()) return;
    loading = true;
    sentinel.classList.add('loading');
    try {
      const more = await loadMore();
      if (!ctx.alive()) return;
      if (!more) { finished = true; stop(); return; }
    } catch (err) {
      if (!ctx.alive() || isAbort(err)) return;
      finished = true;
      io.disconnect();
      sentinel.classList.remove('loading');
      sentinel.replaceChildren(h('button', {
        class: 'btn small', type: 'button', 'data-testid': 'retry',
        onclick: () => { sentinel.replaceChildren(); finished = false; io.observe(sentinel); },
      }, 'Could not load more: retry'));
      showError(err);
      return;
    } finally {
      loading = false;
    }
    sentinel.classList.remove('loading');
    io.unobserve(sentinel);
    io.observe(sentinel);
  }
  function stop() {
    io.disconnect();
    sentinel.classList.remove('loading');
    sentinel.hidden = true;
  }
  ctx.onCleanup(() => io.disconnect());
  pump(); // observes the sentinel once the first page is in
  return { stop };
}
