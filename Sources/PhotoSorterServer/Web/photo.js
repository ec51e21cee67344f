// The Photo page: the preview with a box per face found, linked to its person (an unsorted face — too unsure to
// start a person — has a dashed box and no link), and the facts of the file.

import { h, personThumb, photoThumb, thumb } from './dom.js';
import { nf, pct, TAKEN_SOURCES, takenText, timeAgo } from './format.js';
import { view } from './router.js';

export async function pagePhoto(ctx, idText) {
  const photo = await ctx.get(`/photo/${idText}`);
  if (!ctx.alive()) return;
  const dets = photo.detections || [];
  const personIds = [...new Set([...(photo.person_ids || []), ...dets.map(d => d.person_id).filter(pid => pid != null)])];

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
      const place = { left: pct(x1 / w), top: pct(y1 / hgt), width: pct((x2 - x1) / w), height: pct((y2 - y1) / hgt) };
      const box = pid == null
        ? h('span', { class: 'face-box unsorted', 'data-testid': 'photo-box', 'data-face-id': d.embedding_id, style: place,
                      title: 'Unsorted: too unsure a face (small, blurred or turned away) to start a person' },
            h('span', { class: 'face-label unnamed', text: 'unsorted' }))
        : h('a', { class: 'face-box', href: `#/person/${target(pid)}`, 'data-testid': 'photo-box',
                   'data-person-id': target(pid), 'data-face-id': d.embedding_id, style: place,
                   title: label(pid) + (d.similarity != null ? ` · similarity ${d.similarity.toFixed(2)}` : '') },
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
    // A missing photo's file is gone: it shows nobody until its content is found again (or it is pruned).
    photo.status === 'MISSING'
      ? h('p', { class: 'missing-note', 'data-testid': 'photo-missing',
                 text: `The file is missing (gone ${timeAgo(photo.missing_since)}). Its faces are set aside; `
                       + 'they come back when the photo is found again at any path. `photo-sorter prune` deletes it for good.' })
      : null,
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
