// The Review page: the least certain decisions, one face at a time, answered with buttons or Y / N / S.

import { api } from './api.js';
import { faceThumb, h, nameNode, personThumb, thumb } from './dom.js';
import { plural } from './format.js';
import { view } from './router.js';
import { showError, toast } from './ui.js';

/**
 * One face at a time, least certain first, with the question the server asks about it (`item.question`), so that
 * either answer changes the library:
 * - same_person: is this face the person it is in? Yes confirms it there, No takes it out (it goes where it fits
 *   next, or starts a person);
 * - runner_up (the face is its person's only face, or is unsorted): is this face its runner-up? Yes moves it there, No records
 *   that it is not (the runner-up is never suggested for it again).
 */
export async function pageReview(ctx) {
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
    const [person, runner] = await Promise.all([item.person_id != null ? personOf(item.person_id) : null,
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
         item.person_id != null
           ? personRow('Now alone in', item.person_id, person, 'only this face', 'review-person', false)
           : h('p', { class: 'muted small', 'data-testid': 'review-unsorted', text: 'Now unsorted: too unsure a face to start a person' })]
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
