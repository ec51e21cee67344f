// The People page: everyone found, as a searchable grid of cards.

import { api } from './api.js';
import { h, nameNode, personThumb, thumb } from './dom.js';
import { nf, personName, plural, yearsText } from './format.js';
import { view } from './router.js';
import { debounce, pager } from './ui.js';

const PAGE_PERSONS = 120; // persons per /persons page (People grid)

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

export async function pagePeople(ctx) {
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
    // Pages by cursor (next_after): the hundredth page costs the server what the first does. The counts (which
    // read every person) come from a request of their own, so they never hold a page back.
    let after = null;
    const sub = { ...ctx, alive: () => ctx.alive() && query === q };
    const filters = new URLSearchParams();
    if (peopleState.name) filters.set('name', peopleState.name);
    if (peopleState.showHidden) filters.set('hidden', 'any');
    filters.set('min_photos', peopleState.showOnePhoto ? '1' : '2');
    const signal = AbortSignal.any ? AbortSignal.any([ctx.signal, q.ac.signal]) : q.ac.signal;
    const counts = api('GET', `/persons?limit=1&${filters}`, undefined, signal).then((page) => {
      if (!sub.alive()) return 0;
      const below = page.below_min_photos || 0;
      total.textContent = nf.format(page.total);
      belowNote.hidden = below === 0;
      belowNote.textContent = below ? `Not shown: ${plural(below, 'person', 'people')} seen in only one photo.` : '';
      return below;
    });
    counts.catch(() => {}); // a failed count leaves the total blank; the pages report their own errors
    q.pager = pager(sub, sentinel, async () => {
      const first = after === null;
      const params = new URLSearchParams(filters);
      params.set('limit', String(PAGE_PERSONS));
      if (first) params.set('count', 'false');
      else params.set('after', after);
      const page = await api('GET', '/persons?' + params, undefined, signal);
      if (!sub.alive()) return false;
      const chunk = h('div', { class: 'chunk people-grid' });
      for (const p of page.persons) chunk.append(personCard(p));
      grid.append(chunk); // one DOM insertion per page
      if (first) performance.mark('people-first-page'); // read by bench/web
      if (first && page.persons.length === 0) {
        const below = await counts.catch(() => 0);
        if (!sub.alive()) return false;
        empty.hidden = false;
        const [title, text] = peopleState.name ? ['No one by that name', 'Try another part of the name.']
          : below ? ['No one in two photos yet', 'Everyone found so far is in one photo: tick “Show people with one photo” to see them.']
          : ['No people yet', 'Sort a folder on the Jobs page: every face found becomes a person here.'];
        empty.replaceChildren(h('p', { class: 'empty-title', text: title }), h('p', { class: 'muted', text }));
      }
      after = page.next_after;
      return page.next_after != null && page.persons.length > 0;
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
