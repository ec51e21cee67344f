// The Person page: a person's header (rename, hide, merge) and the Faces tab (select faces, move, confirm, reject).
// The Photos tab is in person-photos.js.

import { api } from './api.js';
import { faceThumb, h, personThumb, thumb } from './dom.js';
import { nf, personName, plural, yearsText } from './format.js';
import { personPhotos } from './person-photos.js';
import { reload, view } from './router.js';
import { confirmDialog, pager, pickPerson, showError, toast } from './ui.js';

const PAGE_FACES = 120;

// Kept so that a reload after an action (or coming back from a photo) stays on the same tab, and the Photos tab
// keeps the people chosen with "With…" while it shows the same person.
const personState = { tab: 'faces', with: { personId: null, people: [] } };

export async function pagePerson(ctx, idText) {
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

  if (personState.tab === 'photos') personPhotos(ctx, person, body, personState.with);
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
