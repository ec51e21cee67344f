// photo-sorter web pages: People, Person, Photo, Review, Jobs.
// Plain browser JavaScript, no build step, no third-party code; everything comes from this service.
//
// Ground rules:
// - Every string from the server reaches the page through textContent/attributes (the `h` helper), never innerHTML.
// - Every page render gets a `ctx` (route context). Leaving the page aborts its reads, disconnects its observers and
//   stops its timers, so a slow answer for an old page can never paint over the new one.
// - Writes are never aborted by navigation and never applied optimistically: the page changes after the server
//   says yes, so a refused action changes nothing.
'use strict';

(() => {
  const view = document.getElementById('view');
  const PAGE_PERSONS = 120; // persons per /persons page (People grid)
  const PAGE_FACES = 120;
  const PAGE_PHOTOS = 60;
  const MAX_QUERY_PERSONS = 20; // persons one GET /photos may name
  const TILES_PER_CHUNK = 420;  // photos of one year per chunk of the Photos tab: 420 fills whole rows of 1 to 7 columns
  const nf = new Intl.NumberFormat();

  // ------------------------------------------------------------------ DOM helpers

  /** Creates an element. props: class, text, style (object), on<event> (listener), anything else an attribute. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    if (props) {
      for (const key in props) {
        const value = props[key];
        if (value == null || value === false) continue;
        if (key === 'class') el.className = value;
        else if (key === 'text') el.textContent = value;
        else if (key === 'style') Object.assign(el.style, value);
        else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
        else el.setAttribute(key, value === true ? '' : String(value));
      }
    }
    for (const child of children.flat()) {
      if (child == null || child === false) continue;
      el.append(child instanceof Node ? child : String(child)); // strings become text nodes
    }
    return el;
  }

  const plural = (n, one, many) => `${nf.format(n)} ${n === 1 ? one : many || one + 's'}`;

  function initials(name) {
    if (!name) return '';
    const words = name.trim().split(/\s+/).filter(Boolean);
    return words.slice(0, 2).map(w => Array.from(w)[0].toUpperCase()).join('');
  }

  function personName(p) {
    return p && p.display_name ? p.display_name : null;
  }

  /** A person's name, or a muted italic "unnamed" (the caller decides whether to add the id). */
  function nameNode(p, { withId = false, cls = '' } = {}) {
    const name = personName(p);
    if (name) return h('span', { class: 'pname ' + cls, text: name });
    return h('span', { class: 'pname unnamed ' + cls, text: withId ? `unnamed #${p.person_id}` : 'unnamed' });
  }

  function timeAgo(ms) {
    if (!ms) return '';
    const s = Math.round((Date.now() - ms) / 1000);
    if (s < 45) return 'just now';
    if (s < 90) return '1 min ago';
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 86400) return `${Math.round(s / 3600)} h ago`;
    return new Date(ms).toLocaleDateString();
  }

  // Dates taken. The service gives wall-clock ISO 8601 text ("2019-06-01T14:03:22", with "+02:00" or "Z" when the
  // photo records its offset): shown as written, never moved into the browser's time zone, and in one fixed format
  // ("1 June 2019, 14:03") whatever the browser's locale.
  const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October',
                  'November', 'December'];
  const WALL_CLOCK = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::\d{2}(?:\.\d+)?)?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

  /** The year of a taken date ("2019"), or null. */
  const yearOf = text => (typeof text === 'string' && /^\d{4}-/.test(text) ? text.slice(0, 4) : null);

  /** "1 June 2019, 14:03 (+02:00)"; "(UTC)" for Z; no offset part when the photo records none. */
  function takenText(text) {
    const m = typeof text === 'string' ? text.match(WALL_CLOCK) : null;
    if (!m) return text || '';
    const [, year, month, day, hour, minute, zone] = m;
    let out = `${Number(day)} ${MONTHS[Number(month) - 1] || month} ${year}`;
    if (hour != null) out += `, ${hour}:${minute}`;
    if (zone === 'Z') out += ' (UTC)';
    else if (zone) out += ` (${zone.length === 3 ? zone + ':00' : zone.length === 5 ? `${zone.slice(0, 3)}:${zone.slice(3)}` : zone})`;
    return out;
  }

  /** Where a photo's date comes from, in words. */
  const TAKEN_SOURCES = { exif: 'from EXIF', xmp: 'from XMP', mtime: 'file date (no date in the photo)' };

  /** The years a person's photos span: "2009–2024", "2019" when it is one year, '' when nothing is dated. */
  function yearsText(first, last) {
    const a = yearOf(first), b = yearOf(last);
    if (!a || !b) return a || b || '';
    return a === b ? a : `${a}–${b}`;
  }

  // Image URLs. Face crops never change, so they cache forever; a person's cover can change (merge, move), so the
  // person thumbnail carries a version (the cover face id when the list gives it) that changes with it.
  const faceThumb = id => `/thumbnails/face/${id}.jpg`;
  const personThumb = (id, version) => `/thumbnails/person/${id}.jpg` + (version != null ? `?v=${version}` : '');
  const photoThumb = id => `/thumbnails/photo/${id}.jpg`;

  /**
   * A thumbnail: fixed width/height attributes (no layout shift), lazy, async decode, neutral placeholder
   * background from CSS; when the image cannot load, the initials of `label` (or a silhouette) instead.
   */
  function thumb(src, size, label, cls, testid) {
    const wrap = h('span', { class: 'thumb ' + (cls || ''), 'data-testid': testid });
    const img = h('img', { src, width: size, height: size, alt: '', loading: 'lazy', decoding: 'async', draggable: 'false' });
    img.addEventListener('error', () => {
      img.remove();
      wrap.classList.add('broken');
      const text = initials(label);
      if (text) { wrap.classList.add('has-initials'); wrap.append(h('span', { class: 'initials', text })); }
    }, { once: true });
    wrap.append(img);
    return wrap;
  }

  // ------------------------------------------------------------------ toasts and dialogs

  const toasts = document.getElementById('toasts');

  function toast(message, kind = 'info', timeoutMs) {
    const el = h('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', 'data-testid': 'toast',
                          'data-kind': kind, text: message });
    el.addEventListener('click', () => el.remove());
    toasts.append(el);
    while (toasts.children.length > 4) toasts.firstElementChild.remove();
    setTimeout(() => el.remove(), timeoutMs || (kind === 'error' ? 9000 : 4000));
    return el;
  }

  function showError(err, prefix) {
    if (isAbort(err) || tokenWall) return; // aborted reads are expected; a missing token has its own page
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

  function confirmDialog({ title, body, ok = 'OK', danger = false }) {
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
  function pickPerson({ title, excludeId, exclude, hint }) {
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

  function debounce(fn, ms) {
    let t = 0;
    return (...args) => { clearTimeout(t); t = setTimeout(() => fn(...args), ms); };
  }

  // ------------------------------------------------------------------ API

  class ApiError extends Error {
    constructor(status, reason) {
      super(reason);
      this.status = status;
      this.reason = reason;
    }
  }

  const isAbort = err => err && (err.name === 'AbortError');

  /**
   * One JSON request to this service. Writes carry the CSRF marker header the server requires of browsers
   * (X-Photo-Sorter-Request) and always a JSON body. Errors are ApiError with the server's `reason`.
   * The access token, when one is required, travels as a cookie the server set: nothing to add here.
   */
  async function api(method, path, body, signal) {
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
  function showTokenWall() {
    if (tokenWall) return;
    tokenWall = true;
    if (current) current.dispose();
    current = null;
    document.body.classList.add('locked');
    document.body.append(h('section', { class: 'token-wall', 'data-testid': 'token-wall', role: 'alert' },
      h('div', { class: 'token-card' },
        h('h1', { text: 'Access token needed' }),
        h('p', { text: 'This photo-sorter needs its access token: open the link with ?token=…' }))));
  }

  // ------------------------------------------------------------------ router

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
      timeout(fn, ms) {
        const id = setTimeout(() => { if (ctx.alive()) fn(); }, ms);
        cleanups.push(() => clearTimeout(id));
        return id;
      },
      dispose() {
        ac.abort();
        for (const fn of cleanups.splice(0)) { try { fn(); } catch { /* keep disposing */ } }
      },
    };
    return ctx;
  }

  const routes = [
    [/^#\/people$/, 'people', () => pagePeople],
    [/^#\/person\/(\d+)$/, 'people', () => pagePerson],
    [/^#\/photo\/(\d+)$/, 'people', () => pagePhoto],
    [/^#\/review$/, 'review', () => pageReview],
    [/^#\/jobs$/, 'jobs', () => pageJobs],
  ];

  function router() {
    if (tokenWall) return;
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
    Promise.resolve(page()(ctx, ...m.slice(1))).catch(err => {
      if (!ctx.alive() || isAbort(err) || tokenWall) return;
      view.replaceChildren(errorBlock(err));
    });
  }

  /** Renders the current route again (after a write): the page re-reads everything it shows. */
  function reload() { router(); }

  function errorBlock(err) {
    return h('div', { class: 'empty error-block', 'data-testid': 'page-error' },
      h('p', { class: 'empty-title', text: err.status === 404 ? 'Not found' : 'Something went wrong' }),
      h('p', { class: 'muted', text: err.reason || String(err) }),
      h('p', null, h('a', { href: '#/people', class: 'btn' }, 'Back to people')));
  }

  /**
   * Infinite scroll: calls `loadMore()` (→ true while there is more) whenever the sentinel comes within
   * ~1.5 screens of the viewport. IntersectionObserver only reports changes, so after each page the sentinel is
   * observed again: if it is still visible (a short page), the observer fires again at once.
   * The first page is asked for at once rather than on the observer's first report, which only comes after the
   * browser's next rendering (a few hundred ms on a busy machine): the first paint of the grid waits for nothing.
   */
  function pager(ctx, sentinel, loadMore) {
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

  // ------------------------------------------------------------------ People

  // Kept across visits so that coming back from a person keeps the search. "Show people with one photo" is also
  // kept in the browser's storage, so that it survives a reload.
  const ONE_PHOTO_KEY = 'photo-sorter.people.show-one-photo';
  const peopleState = { name: '', showHidden: false, showOnePhoto: readFlag(ONE_PHOTO_KEY) };

  function readFlag(key) {
    try { return localStorage.getItem(key) === '1'; } catch { return false; } // storage may be disabled
  }
  function writeFlag(key, on) {
    try { if (on) localStorage.setItem(key, '1'); else localStorage.removeItem(key); } catch { /* kept for this visit only */ }
  }

  function personCard(p) {
    const card = h('a', { class: 'person-card' + (p.hidden ? ' is-hidden' : ''), href: `#/person/${p.person_id}`,
                          title: personName(p) || `unnamed #${p.person_id}`,
                          'data-testid': 'person-card', 'data-person-id': p.person_id },
      thumb(personThumb(p.person_id, p.cover_face_id), 112, personName(p), 'round s112', 'person-thumb'),
      nameNode(p, { cls: 'card-name' }),
      h('span', { class: 'card-meta', text: plural(p.photo_count, 'photo') }));
    const years = yearsText(p.first_taken, p.last_taken);
    if (years) card.append(h('span', { class: 'card-years', 'data-testid': 'person-years', text: years }));
    if (p.hidden) card.append(h('span', { class: 'tag', text: 'hidden' }));
    return card;
  }

  async function pagePeople(ctx) {
    const search = h('input', { type: 'search', class: 'input search', placeholder: 'Search by name', value: peopleState.name,
                                'aria-label': 'Search people by name', 'data-testid': 'people-search' });
    const hiddenBox = h('input', { type: 'checkbox', 'data-testid': 'people-show-hidden', checked: peopleState.showHidden });
    // By default the list leaves out people seen in only one photo (named ones excepted): GET /persons' min_photos.
    const onePhotoBox = h('input', { type: 'checkbox', 'data-testid': 'people-show-one-photo', checked: peopleState.showOnePhoto });
    const total = h('span', { class: 'count', 'data-testid': 'people-total' });
    const belowNote = h('p', { class: 'muted small', hidden: true, 'data-testid': 'people-below-min' });
    const grid = h('div', { class: 'chunks', 'data-testid': 'people-grid' });
    const empty = h('div', { class: 'empty', hidden: true, 'data-testid': 'people-empty' });
    const sentinel = h('div', { class: 'sentinel', 'data-testid': 'people-sentinel' });

    view.append(
      h('div', { class: 'page-head' },
        h('h1', null, 'People ', total),
        h('div', { class: 'toolbar' },
          search,
          h('label', { class: 'toggle' }, onePhotoBox, h('span', { text: 'Show people with one photo' })),
          h('label', { class: 'toggle' }, hiddenBox, h('span', { text: 'Show hidden' }))),
        belowNote),
      grid, empty, sentinel);

    // Each search/toggle starts a new "query": its own pager and abort signal, so the pages of an older query
    // that arrive late are dropped instead of being appended to the new list.
    let query = null;
    function start() {
      if (query) query.dispose();
      const q = query = { ac: new AbortController(), pager: null, dispose() { this.ac.abort(); if (this.pager) this.pager.stop(); } };
      grid.replaceChildren();
      empty.hidden = true;
      sentinel.hidden = false;
      total.textContent = '';
      belowNote.hidden = true;
      let offset = 0;
      const sub = { ...ctx, alive: () => ctx.alive() && query === q };
      q.pager = pager(sub, sentinel, async () => {
        const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE_PERSONS) });
        if (peopleState.name) params.set('name', peopleState.name);
        if (peopleState.showHidden) params.set('hidden', 'any');
        params.set('min_photos', peopleState.showOnePhoto ? '1' : '2');
        const signal = AbortSignal.any ? AbortSignal.any([ctx.signal, q.ac.signal]) : q.ac.signal;
        const page = await api('GET', '/persons?' + params, undefined, signal);
        if (!sub.alive()) return false;
        total.textContent = nf.format(page.total);
        const below = page.below_min_photos || 0;
        belowNote.hidden = below === 0;
        belowNote.textContent = below ? `Not shown: ${plural(below, 'person', 'people')} seen in only one photo.` : '';
        const chunk = h('div', { class: 'chunk people-grid' });
        for (const p of page.persons) chunk.append(personCard(p));
        grid.append(chunk); // one DOM insertion per page
        if (offset === 0) performance.mark('people-first-page'); // read by bench/web
        if (offset === 0 && page.persons.length === 0) {
          empty.hidden = false;
          const [title, text] = peopleState.name ? ['No one by that name', 'Try another part of the name.']
            : below ? ['No one in two photos yet', 'Everyone found so far is in one photo: tick “Show people with one photo” to see them.']
            : ['No people yet', 'Sort a folder on the Jobs page: every face found becomes a person here.'];
          empty.replaceChildren(h('p', { class: 'empty-title', text: title }), h('p', { class: 'muted', text }));
        }
        offset = page.next_offset;
        return page.next_offset != null && page.persons.length > 0;
      });
    }
    ctx.onCleanup(() => { if (query) query.dispose(); });

    search.addEventListener('input', debounce(() => {
      if (!ctx.alive()) return;
      const name = search.value.trim();
      if (name === peopleState.name) return;
      peopleState.name = name;
      start();
    }, 200));
    hiddenBox.addEventListener('change', () => { peopleState.showHidden = hiddenBox.checked; start(); });
    onePhotoBox.addEventListener('change', () => {
      peopleState.showOnePhoto = onePhotoBox.checked;
      writeFlag(ONE_PHOTO_KEY, onePhotoBox.checked);
      start();
    });
    start();
  }

  // ------------------------------------------------------------------ Person

  // Kept so that a reload after an action (or coming back from a photo) stays on the same tab, and the Photos tab
  // keeps the people chosen with "With…" while it shows the same person.
  const personState = { tab: 'faces', with: { personId: null, people: [] } };

  async function pagePerson(ctx, idText) {
    let person = await ctx.get(`/person/${idText}`);
    if (!ctx.alive()) return;
    if (person.redirected_from != null && person.person_id !== Number(idText)) {
      // A merged id answers with its survivor: show the survivor under its own URL (no new history entry).
      history.replaceState(null, '', `#/person/${person.person_id}`);
      toast(`Person #${person.redirected_from} was merged into #${person.person_id}.`, 'info');
    }
    const id = person.person_id;
    if (personState.with.personId !== id) personState.with = { personId: id, people: [] };

    view.append(personHeader(ctx, person));

    const tabs = h('div', { class: 'tabs', role: 'tablist' });
    const body = h('div', { class: 'tab-body' });
    const tabButton = (key, label, count) => h('button', {
      type: 'button', role: 'tab', class: 'tab' + (personState.tab === key ? ' active' : ''), 'data-testid': `tab-${key}`,
      'aria-selected': String(personState.tab === key),
      onclick: () => { if (personState.tab !== key) { personState.tab = key; reload(); } },
    }, label, h('span', { class: 'tab-count', text: nf.format(count) }));
    tabs.append(tabButton('faces', 'Faces', person.face_count), tabButton('photos', 'Photos', person.photo_count));
    view.append(tabs, body);

    if (personState.tab === 'photos') personPhotos(ctx, person, body);
    else personFaces(ctx, person, body);
  }

  function personHeader(ctx, person) {
    const id = person.person_id;
    const nameBox = h('div', { class: 'name-box' });
    const header = h('section', { class: 'person-head', 'data-testid': 'person-header', 'data-person-id': id },
      thumb(personThumb(id, person.cover_face_id != null ? person.cover_face_id : person.face_count), 128,
            personName(person), 'round s128', 'person-avatar'),
      h('div', { class: 'person-info' },
        nameBox,
        h('p', { class: 'muted', 'data-testid': 'person-counts' },
          h('span', null, `#${id} · ${plural(person.face_count, 'face')} · ${plural(person.photo_count, 'photo')}`,
            yearsText(person.first_taken, person.last_taken)
              ? [' · ', h('span', { 'data-testid': 'person-years', text: yearsText(person.first_taken, person.last_taken) })] : null),
          person.hidden ? h('span', { class: 'tag', text: 'hidden' }) : null),
        h('div', { class: 'actions' },
          h('button', { class: 'btn', type: 'button', 'data-testid': 'person-rename', onclick: () => editName() }, 'Rename'),
          h('button', { class: 'btn', type: 'button', 'data-testid': 'person-hide', onclick: toggleHidden },
            person.hidden ? 'Unhide' : 'Hide'),
          h('button', { class: 'btn', type: 'button', 'data-testid': 'person-merge', onclick: merge }, 'Merge with…'))));

    function showName() {
      nameBox.replaceChildren(h('h1', { class: 'person-name', title: 'Click to rename', 'data-testid': 'person-name',
                                        tabindex: '0', onclick: editName,
                                        onkeydown: e => { if (e.key === 'Enter') editName(); } },
        person.display_name ? person.display_name : h('span', { class: 'unnamed', text: 'unnamed' })));
    }

    // Inline rename: Enter saves (empty clears the name), Escape cancels, leaving the field saves a change.
    function editName() {
      const input = h('input', { class: 'input name-input', value: person.display_name || '', maxlength: '200',
                                 placeholder: 'Add a name', 'aria-label': 'Name', 'data-testid': 'person-name-input' });
      let done = false;
      async function commit() {
        if (done) return;
        done = true;
        const value = input.value.trim();
        if (value === (person.display_name || '')) { showName(); return; }
        input.disabled = true;
        try {
          const updated = await api('PATCH', `/person/${id}`, { display_name: value === '' ? null : value });
          person = { ...person, display_name: updated.display_name };
          toast(updated.display_name ? `Renamed to “${updated.display_name}”.` : 'Name cleared.', 'ok');
        } catch (err) {
          showError(err, 'Rename refused');
        }
        if (ctx.alive()) showName();
      }
      input.addEventListener('keydown', e => {
        if (e.key === 'Enter') { e.preventDefault(); commit(); }
        else if (e.key === 'Escape') { e.preventDefault(); done = true; showName(); }
      });
      input.addEventListener('blur', () => commit());
      nameBox.replaceChildren(input);
      input.focus();
      input.select();
    }

    async function toggleHidden(e) {
      const btn = e.currentTarget;
      btn.disabled = true;
      try {
        await api('PATCH', `/person/${id}`, { hidden: !person.hidden });
        toast(person.hidden ? 'Visible again in People.' : 'Hidden: no longer listed in People or exported.', 'ok');
        reload();
      } catch (err) {
        showError(err, person.hidden ? 'Unhide refused' : 'Hide refused');
        btn.disabled = false;
      }
    }

    async function merge() {
      const other = await pickPerson({ title: `Merge into ${personName(person) || `#${id}`}`, excludeId: id,
        hint: 'The person you pick joins this one: their faces move here and their id will open this page.' });
      if (!other || !ctx.alive()) return;
      const otherLabel = personName(other) ? `“${personName(other)}” (#${other.person_id})` : `unnamed #${other.person_id}`;
      const ok = await confirmDialog({
        title: 'Merge these people?',
        body: `${otherLabel} (${plural(other.face_count, 'face')}) becomes ${personName(person) ? `“${personName(person)}”` : `#${id}`}. ` +
              'Their faces are confirmed as this person.',
        ok: 'Merge', danger: true });
      if (!ok || !ctx.alive()) return;
      try {
        const res = await api('POST', '/persons/merge', { person_ids: [id, other.person_id], into: id });
        toast(`Merged ${plural(res.merged.length, 'person', 'persons')} into #${res.person.person_id}.`, 'ok');
        reload();
      } catch (err) {
        showError(err, 'Merge refused');
      }
    }

    showName();
    return header;
  }

  function personFaces(ctx, person, body) {
    const id = person.person_id;
    const grid = h('div', { class: 'chunks', 'data-testid': 'faces-grid' });
    const sentinel = h('div', { class: 'sentinel' });
    const countLabel = h('span', { class: 'sel-count', 'data-testid': 'selection-count' });
    const bar = h('div', { class: 'action-bar', hidden: true, 'data-testid': 'face-actions' },
      countLabel,
      h('div', { class: 'actions' },
        h('button', { class: 'btn', type: 'button', 'data-testid': 'action-move', onclick: () => run('move') }, 'Move to…'),
        h('button', { class: 'btn', type: 'button', 'data-testid': 'action-new-person', onclick: () => run('new') }, 'New person'),
        h('button', { class: 'btn', type: 'button', 'data-testid': 'action-reject', onclick: () => run('reject') }, 'Not this person'),
        h('button', { class: 'btn primary', type: 'button', 'data-testid': 'action-confirm', onclick: () => run('confirm') }, 'Confirm'),
        h('button', { class: 'btn ghost', type: 'button', 'data-testid': 'action-clear', onclick: clear }, 'Clear')));
    body.append(h('p', { class: 'muted small hint', text: 'Click faces to select them (Shift-click selects a range).' }),
      grid, sentinel, bar);

    const tiles = [];        // in display order: {face, el}
    const selected = new Set();
    let anchor = -1;         // index of the last plain click, for Shift-click ranges
    let busy = false;

    function setSelected(i, on) {
      const t = tiles[i];
      if (on) selected.add(t.face.face_id); else selected.delete(t.face.face_id);
      t.el.classList.toggle('selected', on);
      t.el.setAttribute('aria-pressed', String(on));
    }
    function refreshBar() {
      bar.hidden = selected.size === 0;
      countLabel.textContent = `${plural(selected.size, 'face')} selected`;
    }
    function clear() {
      tiles.forEach((_, i) => { if (selected.has(tiles[i].face.face_id)) setSelected(i, false); });
      anchor = -1;
      refreshBar();
    }
    grid.addEventListener('click', e => {
      if (e.target.closest('.open-photo')) return; // the corner link opens the photo instead
      const el = e.target.closest('.face-tile');
      if (!el) return;
      const i = Number(el.dataset.index);
      if (e.shiftKey && anchor >= 0) {
        const [a, b] = anchor < i ? [anchor, i] : [i, anchor];
        for (let k = a; k <= b; k++) setSelected(k, true);
        e.preventDefault();
        window.getSelection().removeAllRanges();
      } else {
        setSelected(i, !selected.has(tiles[i].face.face_id));
        anchor = i;
      }
      refreshBar();
    });

    function faceTile(face, index) {
      const el = h('div', { class: 'face-tile' + (face.confirmed ? ' confirmed' : ''), role: 'button', tabindex: '0',
                            'aria-pressed': 'false', 'data-testid': 'face-tile', 'data-face-id': face.face_id,
                            'data-index': index,
                            title: `Face #${face.face_id}` + (face.similarity != null ? ` · similarity ${face.similarity.toFixed(2)}` : '') +
                                   (face.confirmed ? ' · confirmed' : '') },
        thumb(faceThumb(face.face_id), 112, null, 'square s112'),
        h('span', { class: 'check', 'aria-hidden': 'true' }),
        face.confirmed ? h('span', { class: 'badge-confirmed', title: 'Confirmed', 'data-testid': 'face-confirmed' }) : null,
        h('a', { class: 'open-photo', href: `#/photo/${face.photo_id}`, title: 'Open the photo', 'aria-label': 'Open the photo',
                 'data-testid': 'face-open-photo' }));
      el.addEventListener('keydown', e => { if (e.key === ' ' || e.key === 'Enter') { e.preventDefault(); el.click(); } });
      return el;
    }

    let after = 0;
    pager(ctx, sentinel, async () => {
      const page = await ctx.get(`/person/${id}/faces?after_id=${after}&limit=${PAGE_FACES}`);
      const chunk = h('div', { class: 'chunk face-grid' });
      for (const face of page.faces) {
        const el = faceTile(face, tiles.length);
        tiles.push({ face, el });
        chunk.append(el);
      }
      grid.append(chunk);
      if (tiles.length === 0) grid.replaceWith(h('p', { class: 'empty muted', text: 'This person has no faces left.' }));
      after = page.next_after_id;
      return after != null && page.faces.length > 0;
    });

    // Each action is one request (move) or one request per face (reject, confirm: the API takes one face each);
    // it stops at the first refusal and then re-reads the page, so what is shown is what the server holds.
    async function run(action) {
      if (busy || selected.size === 0) return;
      const ids = tiles.map(t => t.face.face_id).filter(f => selected.has(f)); // display order
      let target = null;
      if (action === 'move') {
        target = await pickPerson({ title: `Move ${plural(ids.length, 'face')} to…`, excludeId: id });
        if (!target || !ctx.alive()) return;
      }
      busy = true;
      bar.classList.add('busy');
      let done = 0;
      try {
        if (action === 'move' || action === 'new') {
          const res = await api('POST', '/faces/move', { face_ids: ids, to_person_id: target ? target.person_id : null });
          toast(res.created_person ? `Moved ${plural(ids.length, 'face')} to a new person #${res.person_id}.`
                                   : `Moved ${plural(ids.length, 'face')} to #${res.person_id}.`, 'ok');
        } else {
          for (const faceId of ids) {
            await api('POST', `/faces/${faceId}/${action}`, {});
            done++;
          }
          toast(action === 'confirm' ? `Confirmed ${plural(done, 'face')}.` : `${plural(done, 'face')} taken out of this person.`, 'ok');
        }
      } catch (err) {
        showError(err, done ? `Stopped after ${plural(done, 'face')}` : 'Refused');
      } finally {
        busy = false;
      }
      if (ctx.alive()) reload();
    }
  }

  /** "Ann", "Ann and Bob", "Ann, Bob and Carl". */
  function listText(items) {
    return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
  }

  const personLabel = p => personName(p) || `unnamed #${p.person_id}`;

  /**
   * The person's photos, newest first (order=taken_desc, paged with next_after), under a heading per year taken.
   * "With…" narrows them to the photos where this person and every chosen person are all present
   * (GET /photos?persons=…&match=all); the chosen people show as chips, each with its own remove button.
   */
  function personPhotos(ctx, person, body) {
    const id = person.person_id;
    const state = personState.with; // {personId: id, people: [PersonSummary…]}
    const addButton = h('button', { type: 'button', class: 'btn small', 'aria-haspopup': 'dialog', 'data-testid': 'with-add',
                                    title: 'Only the photos where this person is together with the people you pick',
                                    onclick: () => add() }, 'With…');
    const chips = h('ul', { class: 'with-chips', 'aria-label': 'Shown together with', 'data-testid': 'with-chips' });
    const clearButton = h('button', { type: 'button', class: 'btn small ghost', 'data-testid': 'with-clear',
                                      onclick: () => clear() }, 'Show all');
    const summary = h('p', { class: 'muted small with-summary', role: 'status', 'data-testid': 'photos-summary' });
    const list = h('div', { class: 'chunks', 'data-testid': 'photos-grid' });
    const empty = h('div', { class: 'empty', hidden: true, 'data-testid': 'photos-empty' });
    const sentinel = h('div', { class: 'sentinel' });
    body.append(h('div', { class: 'with-bar', 'data-testid': 'with-bar' }, addButton, chips, clearButton), summary,
      list, empty, sentinel);

    function renderChips() {
      chips.replaceChildren(...state.people.map(p => h('li', { class: 'with-chip', 'data-testid': 'with-chip',
                                                               'data-person-id': p.person_id },
        thumb(personThumb(p.person_id, p.cover_face_id), 28, personName(p), 'round s28'),
        nameNode(p, { withId: true }),
        h('button', { type: 'button', class: 'chip-remove', 'aria-label': `Remove ${personLabel(p)}`,
                      title: `Remove ${personLabel(p)}`, 'data-testid': 'with-chip-remove',
                      onclick: () => remove(p.person_id) }, '×'))));
      chips.hidden = state.people.length === 0;
      clearButton.hidden = state.people.length === 0;
      addButton.disabled = state.people.length + 1 >= MAX_QUERY_PERSONS;
    }

    async function add() {
      const picked = await pickPerson({
        title: `Photos of ${personLabel(person)} with…`, exclude: [id, ...state.people.map(p => p.person_id)],
        hint: 'Only the photos where everyone chosen is present are shown.' });
      if (!picked || !ctx.alive() || picked.person_id === id || state.people.some(p => p.person_id === picked.person_id)) return;
      state.people = [...state.people, picked];
      renderChips();
      start();
    }

    function remove(pid) {
      const at = state.people.findIndex(p => p.person_id === pid);
      state.people = state.people.filter(p => p.person_id !== pid);
      renderChips();
      start();
      // Keyboard users stay in the chips: the next chip's button, else the previous one, else "With…".
      const buttons = chips.querySelectorAll('.chip-remove');
      (buttons[Math.min(at, buttons.length - 1)] || addButton).focus();
    }

    function clear() {
      state.people = [];
      renderChips();
      start();
      addButton.focus();
    }

    function photoTile(p) {
      const when = p.taken_at ? takenText(p.taken_at) : null;
      const name = p.filename || p.path;
      return h('a', { class: 'photo-tile', href: `#/photo/${p.photo_id}`, title: [name, when].filter(Boolean).join(' · '),
                      'aria-label': when ? `${name}, taken ${when}` : name,
                      'data-testid': 'photo-tile', 'data-photo-id': p.photo_id, 'data-taken': p.taken_at || '' },
        thumb(photoThumb(p.photo_id), 180, null, 'cover s180'));
    }

    // Each change of the chosen people starts a new "query" (as on the People page): its own pager and abort
    // signal, so that a late page of the previous query is dropped instead of being added to the new list.
    let query = null;
    ctx.onCleanup(() => { if (query) query.dispose(); });

    function start() {
      if (query) query.dispose();
      const q = query = { ac: new AbortController(), pager: null, dispose() { this.ac.abort(); if (this.pager) this.pager.stop(); } };
      const others = state.people.slice();
      list.replaceChildren();
      empty.hidden = true;
      sentinel.hidden = false;
      summary.textContent = '';
      summary.hidden = others.length === 0;
      let after = null, count = 0, lastYear, grid = null, inGrid = 0;
      const sub = { ...ctx, alive: () => ctx.alive() && query === q };
      q.pager = pager(sub, sentinel, async () => {
        const params = new URLSearchParams({ order: 'taken_desc', limit: String(PAGE_PHOTOS) });
        if (after != null) params.set('after', after);
        let path = `/person/${id}/photos?${params}`;
        if (others.length) {
          params.set('persons', [id, ...others.map(p => p.person_id)].join(','));
          params.set('match', 'all');
          path = `/photos?${params}`;
        }
        const signal = AbortSignal.any ? AbortSignal.any([ctx.signal, q.ac.signal]) : q.ac.signal;
        const page = await api('GET', path, undefined, signal);
        if (!sub.alive()) return false;
        // Each year is a chunk: its heading, then its photos in one grid, which the next page goes on filling when
        // the year goes on there (no half-empty row at a page boundary). A long year is cut into chunks of
        // TILES_PER_CHUNK photos, a whole number of rows at any width (1 to 7 columns).
        const columns = Math.max(1, Math.floor((list.clientWidth + 6) / 156));
        const touched = new Set();
        for (const p of page.photos) {
          const year = yearOf(p.taken_at) || '';
          if (!grid || year !== lastYear || inGrid >= TILES_PER_CHUNK) {
            const chunk = h('section', { class: 'chunk photo-chunk' });
            if (year !== lastYear) {
              chunk.append(h('h2', { class: 'year-heading', 'data-testid': 'photos-year', 'data-year': year,
                                     text: year || 'No date' }));
            }
            grid = h('div', { class: 'photo-grid' });
            chunk.append(grid);
            list.append(chunk);
            lastYear = year;
            inGrid = 0;
          }
          grid.append(photoTile(p));
          inGrid++;
          touched.add(grid);
        }
        // The height a chunk that was never drawn stands for (content-visibility), from its rows.
        for (const g of touched) {
          const rows = Math.ceil(g.childElementCount / columns);
          g.parentElement.style.containIntrinsicSize = `auto ${rows * 156 + (g.previousElementSibling ? 48 : 0)}px`;
        }
        count += page.photos.length;
        after = page.next_after;
        const more = after != null && page.photos.length > 0;
        const together = listText(others.map(personLabel));
        if (others.length) {
          summary.textContent = count || more
            ? `${plural(count, 'photo')}${more ? ' so far' : ''} of ${personLabel(person)} together with ${together}`
            : '';
        }
        if (count === 0 && !more) {
          empty.hidden = false;
          empty.replaceChildren(...(others.length
            ? [h('p', { class: 'empty-title', text: `No photos of ${personLabel(person)} together with ${together}` }),
               h('p', { class: 'muted', text: 'Remove someone to see more photos.' })]
            : [h('p', { class: 'empty-title', text: 'No photos' })]));
        }
        return more;
      });
    }

    renderChips();
    start();
  }

  // ------------------------------------------------------------------ Photo

  async function pagePhoto(ctx, idText) {
    const photo = await ctx.get(`/photo/${idText}`);
    if (!ctx.alive()) return;
    const dets = photo.detections || [];
    const personIds = [...new Set([...(photo.person_ids || []), ...dets.map(d => d.person_id)])];

    // Names for the labels: one GET /person per person of the photo, in parallel; a failure leaves "#id".
    const people = new Map();
    await Promise.all(personIds.map(pid => ctx.get(`/person/${pid}`).then(p => people.set(pid, p), () => null)));
    if (!ctx.alive()) return;
    const label = pid => {
      const p = people.get(pid);
      return p && p.display_name ? p.display_name : `unnamed #${pid}`;
    };
    // A merged person answers with its survivor: link boxes to the survivor.
    const target = pid => (people.get(pid) ? people.get(pid).person_id : pid);

    const w = photo.width, hgt = photo.height;
    const stage = h('div', { class: 'photo-stage', 'data-testid': 'photo-stage' });
    const frame = h('div', { class: 'photo-frame' });
    // The preview's longest side is at most 640 px; the frame keeps the photo's aspect ratio and its size is set
    // before the image arrives (no layout shift). Boxes are placed in % of the full photo's width/height, so they
    // line up with the preview whatever size it is drawn at.
    const img = h('img', { src: photoThumb(photo.photo_id), alt: photo.filename || '', decoding: 'async',
                           'data-testid': 'photo-image' });
    if (w && hgt) {
      frame.style.aspectRatio = `${w} / ${hgt}`;
      const scale = Math.min(1, 640 / Math.max(w, hgt));
      img.width = Math.round(w * scale);
      img.height = Math.round(hgt * scale);
      // As wide as fits the column and ~72% of the viewport height, at most twice the preview's size.
      frame.style.width = `min(100%, calc(72vh * ${(w / hgt).toFixed(4)}), ${Math.round(w * scale * 2)}px)`;
    } else {
      frame.classList.add('no-size');
    }
    img.addEventListener('error', () => { frame.classList.add('broken'); img.remove(); frame.prepend(h('span', { class: 'frame-missing', text: 'No preview for this photo' })); }, { once: true });
    frame.append(img);
    if (w && hgt) {
      for (const d of dets) {
        const [x1, y1, x2, y2] = d.bbox;
        const pid = d.person_id;
        const box = h('a', { class: 'face-box', href: `#/person/${target(pid)}`, 'data-testid': 'photo-box',
                             'data-person-id': target(pid), 'data-face-id': d.embedding_id,
                             title: label(pid) + (d.similarity != null ? ` · similarity ${d.similarity.toFixed(2)}` : ''),
                             style: { left: pct(x1 / w), top: pct(y1 / hgt), width: pct((x2 - x1) / w), height: pct((y2 - y1) / hgt) } },
          h('span', { class: 'face-label' + (people.get(pid) && people.get(pid).display_name ? '' : ' unnamed'), text: label(pid) }));
        // Labels of boxes near the bottom edge go above the box so they stay inside the photo.
        if (y2 / hgt > 0.85) box.classList.add('label-top');
        frame.append(box);
      }
    }
    stage.append(frame);

    const chips = h('div', { class: 'chips' });
    for (const pid of personIds) {
      const p = people.get(pid);
      chips.append(h('a', { class: 'chip', href: `#/person/${target(pid)}`, 'data-testid': 'photo-person-chip', 'data-person-id': target(pid) },
        thumb(personThumb(target(pid), p ? (p.cover_face_id != null ? p.cover_face_id : p.face_count) : null), 28, p && p.display_name, 'round s28'),
        h('span', { class: (p && p.display_name) ? '' : 'unnamed', text: label(pid) })));
    }

    const row = (k, v, extra) => [h('dt', { text: k }), h('dd', extra || null, v)];
    const info = h('aside', { class: 'photo-info', 'data-testid': 'photo-info' },
      h('h1', { class: 'photo-title', text: photo.filename || `Photo #${photo.photo_id}` }),
      h('dl', { class: 'facts' },
        row('Path', photo.path, { class: 'path', 'data-testid': 'photo-path' }),
        row('Taken', photo.taken_at
          ? [h('time', { datetime: photo.taken_at, title: photo.taken_at, text: takenText(photo.taken_at) }),
             TAKEN_SOURCES[photo.taken_at_source]
               ? h('span', { class: 'taken-source', 'data-source': photo.taken_at_source,
                             text: ` · ${TAKEN_SOURCES[photo.taken_at_source]}` }) : null]
          : '—', { 'data-testid': 'photo-taken' }),
        row('Size', w && hgt ? `${nf.format(w)} × ${nf.format(hgt)}` : '—'),
        row('Status', h('span', { class: `status s-${String(photo.status).toLowerCase()}`, text: photo.status }), { 'data-testid': 'photo-status' }),
        row('Faces', photo.status !== 'PROCESSED' ? '—' : photo.no_faces ? 'none found' : String(dets.length)),
        photo.retry_count ? row('Retries', String(photo.retry_count)) : null,
        photo.last_error ? row('Last error', photo.last_error, { class: 'error-text', 'data-testid': 'photo-error' }) : null),
      personIds.length ? h('h2', { class: 'side-title', text: 'People in this photo' }) : null,
      chips);

    view.append(h('div', { class: 'page-head slim' },
        h('button', { type: 'button', class: 'btn ghost small', 'data-testid': 'back',
                      onclick: () => (history.length > 1 ? history.back() : (location.hash = '#/people')) }, '← Back')),
      h('div', { class: 'photo-page' }, stage, info));
  }

  const pct = x => `${(Math.max(0, Math.min(1, x)) * 100).toFixed(3)}%`;

  // ------------------------------------------------------------------ Review

  /**
   * One face at a time, least certain first, with the question the server asks about it (`item.question`), so that
   * either answer changes the library:
   * - same_person: is this face the person it is in? Yes confirms it there, No takes it out (it goes where it fits
   *   next, or starts a person);
   * - runner_up (the face is its person's only face): is this face its runner-up? Yes moves it there, No records
   *   that it is not (the runner-up is never suggested for it again).
   */
  async function pageReview(ctx) {
    const card = h('div', { class: 'review-wrap' });
    const progress = h('span', { class: 'count', 'data-testid': 'review-progress' });
    view.append(h('div', { class: 'page-head' }, h('h1', null, 'Review ', progress),
      h('p', { class: 'muted small', text: 'The least certain decisions first. Every answer changes the library; skip what you cannot tell.' })), card);

    const people = new Map(); // person id -> Promise<PersonView|null>, fetched once per visit
    const personOf = pid => {
      if (!people.has(pid)) people.set(pid, ctx.get(`/person/${pid}`).catch(() => null));
      return people.get(pid);
    };
    const skipped = new Set(); // skipped on this visit: left out when the queue is read again
    let queue = [], index = 0, busy = false;

    async function fetchQueue() {
      const res = await ctx.get(`/review?limit=${Math.min(500, 50 + skipped.size)}`);
      queue = res.faces.filter(f => !skipped.has(f.face_id));
      index = 0;
    }

    async function show() {
      if (index >= queue.length) await fetchQueue();
      if (!ctx.alive()) return;
      const item = queue[index];
      if (!item) {
        progress.textContent = '';
        card.replaceChildren(h('div', { class: 'empty', 'data-testid': 'review-empty' },
          h('p', { class: 'empty-title', text: 'Nothing to review' }),
          h('p', { class: 'muted', text: skipped.size ? `${plural(skipped.size, 'face')} skipped on this visit.` : 'Every close call has been settled.' })));
        return;
      }
      progress.textContent = `${index + 1} of ${queue.length}`;
      const [person, runner] = await Promise.all([personOf(item.person_id),
        item.runner_up_person_id != null ? personOf(item.runner_up_person_id) : null]);
      if (!ctx.alive() || queue[index] !== item) return;
      card.replaceChildren(reviewCard(item, person, runner));
      // Warm the cache for the next face so that the next card appears with its image.
      const next = queue[index + 1];
      if (next) { new Image().src = faceThumb(next.face_id); personOf(next.person_id); }
    }

    /** "Ann Smith", or "person #12" for someone without a name. */
    const who = (p, pid) => (p && p.display_name ? p.display_name : `person #${p ? p.person_id : pid}`);

    function personRow(kind, pid, p, detail, testid, asked) {
      const shown = p ? p.person_id : pid;
      return h('a', { class: 'review-person' + (asked ? ' asked' : ''), href: `#/person/${shown}`, 'data-testid': testid,
                      'data-person-id': shown },
        thumb(personThumb(shown, p ? (p.cover_face_id != null ? p.cover_face_id : p.face_count) : null), 64, p && p.display_name, 'round s64'),
        h('span', { class: 'rp-text' },
          h('span', { class: 'rp-kind', text: kind }),
          p ? nameNode(p, { withId: true }) : h('span', { class: 'pname unnamed', text: `#${pid}` }),
          h('span', { class: 'muted small', text: [p ? plural(p.photo_count, 'photo') : null, detail].filter(Boolean).join(' · ') })));
    }

    const similarityText = s => (s != null ? `similarity ${s.toFixed(2)}` : null);

    function reviewCard(item, person, runner) {
      const q = item.question;
      const aboutRunnerUp = q.kind === 'runner_up';
      const asked = aboutRunnerUp ? runner : person;
      const rows = aboutRunnerUp
        ? [personRow('Asked: the nearest other person', item.runner_up_person_id, runner, similarityText(item.runner_up_similarity),
                     'review-runner-up', true),
           personRow('Now alone in', item.person_id, person, 'only this face', 'review-person', false)]
        : [personRow('Asked: the person it is in', item.person_id, person,
                     similarityText(item.similarity) || 'this face started the person', 'review-person', true),
           item.runner_up_person_id != null
             ? personRow('Runner-up', item.runner_up_person_id, runner, similarityText(item.runner_up_similarity), 'review-runner-up', false)
             : null];
      const name = who(asked, q.person_id);
      const effects = aboutRunnerUp
        ? `Yes moves this face to ${name}. No records that it is not ${name}: it stays where it is, and ${name} is not suggested for it again.`
        : `Yes keeps this face in ${name} for good. No takes it out: it goes to the next best person, or starts a new one.`;
      return h('article', { class: 'review-card', 'data-testid': 'review-card', 'data-face-id': item.face_id },
        h('div', { class: 'review-face' },
          thumb(faceThumb(item.face_id), 192, null, 'square s192', 'review-face'),
          h('a', { class: 'small', href: `#/photo/${item.photo_id}`, 'data-testid': 'review-photo-link', text: 'Open the photo' })),
        h('div', { class: 'review-side' },
          h('h2', { class: 'review-question', 'data-testid': 'review-question', 'data-kind': q.kind, 'data-person-id': q.person_id },
            `Is this ${name}?`),
          rows,
          h('p', { class: 'gap', 'data-testid': 'review-gap' },
            h('span', { class: 'gap-value', text: item.gap.toFixed(3) }),
            h('span', { class: 'muted small', text: ' similarity gap between the two (smaller is less certain)' })),
          h('p', { class: 'muted small review-effects', 'data-testid': 'review-effects', text: effects }),
          h('div', { class: 'review-buttons' },
            h('button', { class: 'btn primary big', type: 'button', 'data-testid': 'review-yes', onclick: () => act('yes') },
              aboutRunnerUp ? 'Yes, move it ' : 'Yes, keep it ', h('kbd', { text: 'Y' })),
            h('button', { class: 'btn danger big', type: 'button', 'data-testid': 'review-no', onclick: () => act('no') },
              aboutRunnerUp ? 'No, not them ' : 'No, take it out ', h('kbd', { text: 'N' })),
            h('button', { class: 'btn big', type: 'button', 'data-testid': 'review-skip', onclick: () => act('skip') },
              'Skip ', h('kbd', { text: 'S' }), h('kbd', { text: '→' })))));
    }

    /** Sends the answer; resolves with whether faces moved (other cards of the queue may then be out of date). */
    async function answer(item, yes) {
      const q = item.question;
      if (q.kind === 'runner_up') {
        if (yes) {
          const res = await api('POST', '/faces/move', { face_ids: [item.face_id], to_person_id: q.person_id });
          toast(`Face #${item.face_id} moved to #${res.person_id}.`, 'ok', 2500);
          people.delete(item.person_id); people.delete(res.person_id); // their counts changed
          return true;
        }
        await api('POST', `/faces/${item.face_id}/reject`, { person_id: q.person_id });
        toast(`Noted: face #${item.face_id} is not #${q.person_id}.`, 'ok', 2500);
        return false;
      }
      if (yes) {
        await api('POST', `/faces/${item.face_id}/confirm`, {});
        return false;
      }
      const res = await api('POST', `/faces/${item.face_id}/reject`, {});
      toast(res.created_person ? `Face #${item.face_id} now starts a new person #${res.person_id}.`
                               : `Face #${item.face_id} moved to #${res.person_id}.`, 'ok', 2500);
      people.delete(item.person_id); people.delete(res.person_id);
      return true;
    }

    async function act(action) {
      const item = queue[index];
      if (busy || !item) return;
      busy = true;
      card.classList.add('busy');
      try {
        if (action === 'skip') {
          skipped.add(item.face_id);
          index++;
        } else if (await answer(item, action === 'yes')) {
          await fetchQueue(); // a face moved: the questions about its persons may have changed
        } else {
          index++;
        }
        await show();
      } catch (err) {
        showError(err, 'Answer refused');
      } finally {
        busy = false;
        card.classList.remove('busy');
      }
    }

    // One key per answer. Ignored while typing in a field, with modifiers, on key repeat, or while a dialog is open.
    ctx.listen(document, 'keydown', e => {
      if (e.repeat || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target;
      if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
      if (document.querySelector('dialog[open]')) return;
      const key = e.key.toLowerCase();
      const action = key === 'y' ? 'yes' : key === 'n' ? 'no' : (key === 's' || e.key === 'ArrowRight') ? 'skip' : null;
      if (!action) return;
      e.preventDefault();
      act(action);
    });

    card.append(h('p', { class: 'muted', text: 'Loading…' }));
    await show();
  }

  // ------------------------------------------------------------------ Jobs

  async function pageJobs(ctx) {
    const path = h('input', { class: 'input grow', type: 'text', name: 'path', placeholder: '/home/me/Pictures', required: true,
                              autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Folder to ingest', 'data-testid': 'ingest-path' });
    const submit = h('button', { class: 'btn primary', type: 'submit', 'data-testid': 'ingest-submit' }, 'Ingest');
    const roots = h('p', { class: 'muted small roots', 'data-testid': 'allowed-roots' });
    const form = h('form', { class: 'ingest-form card', 'data-testid': 'ingest-form' },
      h('h2', { class: 'card-title', text: 'Ingest a folder' }),
      h('div', { class: 'row' }, path, submit), roots);
    const list = h('div', { class: 'jobs', 'data-testid': 'jobs-list' });
    view.append(h('div', { class: 'page-head' }, h('h1', { text: 'Jobs' })), form, h('h2', { class: 'section-title', text: 'Recent jobs' }), list);

    ctx.get('/ui/settings').then(settings => {
      const allowed = settings.allowed_roots || [];
      if (!allowed.length) { roots.textContent = 'Any folder on this machine may be ingested (subfolders included).'; return; }
      roots.replaceChildren('Allowed folders: ');
      allowed.forEach((r, i) => {
        if (i) roots.append(' ');
        roots.append(h('button', { type: 'button', class: 'root-chip', title: 'Use this folder', text: r,
                                   onclick: () => { path.value = r; path.focus(); } }));
      });
    }, err => { if (!isAbort(err)) roots.textContent = ''; });

    form.addEventListener('submit', async e => {
      e.preventDefault();
      const value = path.value.trim();
      if (!value) return;
      submit.disabled = true;
      try {
        const res = await api('POST', '/ingest-folder', { path: value, recursive: true });
        toast(`Ingest started (job ${String(res.jobId).slice(0, 8)}).`, 'ok');
        path.value = '';
        poll(true);
      } catch (err) {
        showError(err, 'Ingest refused');
      } finally {
        submit.disabled = false;
      }
    });

    const rows = new Map();   // job id -> {el, parts, open}
    const samples = new Map(); // job id -> {t, finished, rate}: for photos/s between polls
    let timer = 0, polling = false;
    ctx.onCleanup(() => clearTimeout(timer));

    async function poll(now) {
      clearTimeout(timer);
      if (polling) return;
      polling = true;
      let anyRunning = false;
      try {
        const res = await ctx.get('/ingest-jobs?limit=50');
        if (!ctx.alive()) return;
        render(res.jobs);
        anyRunning = res.jobs.some(j => !j.done && j.status !== 'FAILED');
      } catch (err) {
        if (isAbort(err) || !ctx.alive()) return;
        if (now) showError(err);
      } finally {
        polling = false;
      }
      if (ctx.alive()) timer = setTimeout(() => poll(false), anyRunning ? 1000 : 5000);
    }

    function render(jobs) {
      if (!jobs.length) {
        list.replaceChildren(h('div', { class: 'empty', 'data-testid': 'jobs-empty' },
          h('p', { class: 'empty-title', text: 'No jobs yet' }), h('p', { class: 'muted', text: 'Ingest a folder to sort its photos by person.' })));
        rows.clear();
        return;
      }
      if (!rows.size) list.replaceChildren();
      const order = [];
      const now = performance.now();
      for (const job of jobs) {
        let row = rows.get(job.job_id);
        if (!row) { row = jobRow(job); rows.set(job.job_id, row); }
        updateJobRow(row, job, rateOf(job, now));
        order.push(row.el);
      }
      // Keep the rows that exist (an open failures list stays open); put them in the server's order.
      order.forEach((el, i) => { if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null); });
      while (list.children.length > order.length) list.lastElementChild.remove();
    }

    // Photos finished (processed or failed) per second between two polls, smoothed so that it does not jump.
    function rateOf(job, now) {
      const finished = job.processed + job.failed;
      const prev = samples.get(job.job_id);
      let rate = prev ? prev.rate : null;
      if (prev && now - prev.t >= 500) {
        const r = (finished - prev.finished) / ((now - prev.t) / 1000);
        rate = rate == null ? r : 0.6 * r + 0.4 * rate;
        samples.set(job.job_id, { t: now, finished, rate });
      } else if (!prev) {
        samples.set(job.job_id, { t: now, finished, rate: null });
      }
      return rate;
    }

    function jobRow(job) {
      const parts = {
        title: h('span', { class: 'job-path' }),
        status: h('span', { class: 'status', 'data-testid': 'job-status' }),
        when: h('span', { class: 'muted small' }),
        rate: h('span', { class: 'job-rate small', 'data-testid': 'job-rate' }),
        bar: h('div', { class: 'bar-fill' }),
        progressText: h('span', { class: 'job-progress-text', 'data-testid': 'job-progress-text' }),
        counts: h('div', { class: 'job-counts muted small', 'data-testid': 'job-counts' }),
        error: h('p', { class: 'error-text small', hidden: true }),
        failBtn: h('button', { type: 'button', class: 'btn small ghost', hidden: true, 'data-testid': 'job-failures-toggle' }),
        failList: h('ul', { class: 'failures', hidden: true, 'data-testid': 'job-failures' }),
        skipBtn: h('button', { type: 'button', class: 'btn small ghost', hidden: true, 'data-testid': 'job-not-queued-toggle' }),
        skipList: h('ul', { class: 'failures', hidden: true, 'data-testid': 'job-not-queued' }),
      };
      parts.barOuter = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100',
                                    'data-testid': 'job-progress' }, parts.bar);
      const el = h('article', { class: 'job card', 'data-testid': 'job-row', 'data-job-id': job.job_id },
        h('div', { class: 'job-top' }, parts.title, parts.rate, parts.status, parts.when),
        h('div', { class: 'job-mid' }, parts.barOuter, parts.progressText),
        parts.counts, parts.error,
        h('div', null, parts.failBtn), parts.failList,
        h('div', null, parts.skipBtn), parts.skipList);
      const row = { el, parts, open: false, skipOpen: false, job };
      parts.failBtn.addEventListener('click', () => toggleFailures(row));
      parts.skipBtn.addEventListener('click', () => toggleNotQueued(row));
      return row;
    }

    function updateJobRow(row, job, rate) {
      const p = row.parts;
      row.job = job;
      // Progress: the job's photos that are finished (PROCESSED, including no-face photos and ones an earlier
      // job had already done, or FAILED for good) out of every photo the job has found so far. While the folder
      // is still being scanned that total still grows, so the bar is shown as partial (striped).
      const finished = job.processed + job.failed;
      const total = finished + job.ready + job.processing;
      const scanning = job.status === 'SCANNING';
      const ratio = job.done ? 1 : total ? finished / total : 0;
      row.el.dataset.status = job.status;
      row.el.dataset.done = String(job.done);
      p.title.textContent = job.job_name ? `${job.job_name} — ${job.path}` : job.path;
      p.title.title = job.path;
      p.status.textContent = job.done ? (job.failed ? 'done with failures' : 'done') : scanning ? 'scanning' : job.status === 'FAILED' ? 'failed' : 'sorting';
      p.status.className = 'status ' + (job.status === 'FAILED' ? 's-failed' : job.done ? (job.failed ? 's-warn' : 's-processed') : 's-processing');
      if (job.dry_run) p.status.textContent += ' (dry run)';
      // (finished_at is when the scan ended, not the analysis: no duration is shown from it.)
      p.when.textContent = timeAgo(job.created_at);
      p.when.title = new Date(job.created_at).toLocaleString();
      p.bar.style.width = pct(ratio);
      p.barOuter.classList.toggle('indeterminate', scanning);
      p.barOuter.classList.toggle('complete', job.done);
      p.barOuter.setAttribute('aria-valuenow', String(Math.round(ratio * 100)));
      p.progressText.textContent = `${nf.format(finished)} / ${nf.format(total)}${scanning ? '+' : ''} photos`;
      p.rate.textContent = !job.done && rate != null && rate > 0 ? `${rate.toFixed(rate < 10 ? 1 : 0)} photos/s` : '';
      const bits = [
        `${nf.format(job.scanned)} found`, `${nf.format(job.inserted)} new`,
        job.skipped ? `${nf.format(job.skipped)} already known` : null,
        `${nf.format(job.processed)} analysed`,
        job.no_faces ? `${nf.format(job.no_faces)} without faces` : null,
        `${plural(job.faces, 'face')}`,
        job.persons_created ? `${plural(job.persons_created, 'new person', 'new people')}` : null,
        job.failed ? `${nf.format(job.failed)} failed` : null,
        job.not_queued_count ? `${nf.format(job.not_queued_count)} not queued` : null,
      ].filter(Boolean);
      p.counts.textContent = bits.join(' · ');
      p.error.hidden = !job.last_error;
      p.error.textContent = job.last_error || '';
      p.failBtn.hidden = !job.failed;
      p.failBtn.textContent = `${row.open ? '▾' : '▸'} ${plural(job.failed, 'failure')}`;
      if (row.open && row.failCount !== job.failed) loadFailures(row); // new failures while open
      p.skipBtn.hidden = !job.not_queued_count;
      p.skipBtn.textContent = `${row.skipOpen ? '▾' : '▸'} ${nf.format(job.not_queued_count || 0)} not queued`;
      if (row.skipOpen && row.skipCount !== job.not_queued_count) loadNotQueued(row);
    }

    function toggleNotQueued(row) {
      row.skipOpen = !row.skipOpen;
      row.parts.skipList.hidden = !row.skipOpen;
      row.parts.skipBtn.textContent = `${row.skipOpen ? '▾' : '▸'} ${nf.format(row.job.not_queued_count || 0)} not queued`;
      if (row.skipOpen) loadNotQueued(row);
    }

    // Files of the folder that were not analysed (not an image, empty, unreadable…), with the reason.
    async function loadNotQueued(row) {
      row.skipCount = row.job.not_queued_count;
      try {
        const res = await ctx.get(`/ingest-jobs/${encodeURIComponent(row.job.job_id)}/not-queued?limit=200`);
        const frag = document.createDocumentFragment();
        for (const f of res.not_queued) {
          frag.append(h('li', { class: 'failure', 'data-testid': 'job-not-queued-entry' },
            h('span', { class: 'path', text: f.path }),
            h('span', { class: 'muted', text: f.reason })));
        }
        if (res.next_after) {
          frag.append(h('li', { class: 'muted small', text: `… and more: GET /ingest-jobs/${row.job.job_id}/not-queued` }));
        }
        row.parts.skipList.replaceChildren(frag);
      } catch (err) {
        showError(err, 'Could not read the files that were not queued');
      }
    }

    async function toggleFailures(row) {
      row.open = !row.open;
      row.parts.failList.hidden = !row.open;
      row.parts.failBtn.textContent = `${row.open ? '▾' : '▸'} ${plural(row.job.failed, 'failure')}`;
      if (row.open) loadFailures(row);
    }

    async function loadFailures(row) {
      row.failCount = row.job.failed;
      try {
        const res = await ctx.get(`/ingest-jobs/${encodeURIComponent(row.job.job_id)}/failures?limit=200`);
        const frag = document.createDocumentFragment();
        for (const f of res.failures) {
          frag.append(h('li', { class: 'failure', 'data-testid': 'job-failure' },
            h('a', { href: `#/photo/${f.photo_id}`, class: 'path', text: f.path }),
            h('span', { class: 'error-text', text: f.error || 'no reason recorded' })));
        }
        if (!res.failures.length) frag.append(h('li', { class: 'muted small', text: 'No failures recorded.' }));
        row.parts.failList.replaceChildren(frag);
      } catch (err) {
        showError(err, 'Could not read the failures');
      }
    }

    await poll(true);
  }

  // ------------------------------------------------------------------ start

  window.addEventListener('hashchange', router);
  if (!location.hash) history.replaceState(null, '', '#/people');
  router();
})();
