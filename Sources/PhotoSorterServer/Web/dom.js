// Building the page: the `h` element helper, person names, thumbnails and their URLs.
// Every string from the server reaches the page through textContent/attributes (`h`), never innerHTML.

import { initials, personName } from './format.js';

/** Creates an element. props: class, text, style (object), on<event> (listener), anything else an attribute. */
export function h(tag, props, ...children) {
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

/** A person's name, or a muted italic "unnamed" (the caller decides whether to add the id). */
export function nameNode(p, { withId = false, cls = '' } = {}) {
  const name = personName(p);
  if (name) return h('span', { class: 'pname ' + cls, text: name });
  return h('span', { class: 'pname unnamed ' + cls, text: withId ? `unnamed #${p.person_id}` : 'unnamed' });
}

// Image URLs. Face crops never change, so they cache forever; a person's cover can change (merge, move), so the
// person thumbnail carries a version (the cover face id when the list gives it) that changes with it.
export const faceThumb = id => `/thumbnails/face/${id}.jpg`;
export const personThumb = (id, version) => `/thumbnails/person/${id}.jpg` + (version != null ? `?v=${version}` : '');
export const photoThumb = id => `/thumbnails/photo/${id}.jpg`;

/**
 * A thumbnail: fixed width/height attributes (no layout shift), lazy, async decode, neutral placeholder
 * background from CSS; when the image cannot load, the initials of `label` (or a silhouette) instead.
 */
export function thumb(src, size, label, cls, testid) {
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
