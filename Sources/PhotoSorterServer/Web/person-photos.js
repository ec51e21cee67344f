// A person's Photos tab: newest first under a heading per year taken; "With…" narrows it to the photos of people
// together.

import { api } from './api.js';
import { h, nameNode, personThumb, photoThumb, thumb } from './dom.js';
import { personName, plural, takenText, yearOf } from './format.js';
import { pager, pickPerson } from './ui.js';

const PAGE_PHOTOS = 60;
const MAX_QUERY_PERSONS = 20; // persons one GET /photos may name
const TILES_PER_CHUNK = 420;  // photos of one year per chunk of the Photos tab: 420 fills whole rows of 1 to 7 columns

/** "Ann", "Ann and Bob", "Ann, Bob and Carl". */
function listText(items) {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items[items.length - 1]}`;
}

const personLabel = p => personName(p) || `unnamed #${p.person_id}`;

/**
 * The person's photos, newest first (order=taken_desc, paged with next_after), under a heading per year taken.
 * "With…" narrows them to the photos where this person and every chosen person are all present
 * (GET /photos?persons=…&match=all); the chosen people show as chips, each with its own remove button.
 * `state` ({personId, people: [PersonSummary…]}) is the Person page's, kept while it shows the same person.
 */
export function personPhotos(ctx, person, body, state) {
  const id = person.person_id;
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
