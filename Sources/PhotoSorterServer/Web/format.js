// Text the pages show: counts, names, dates taken, years, percentages. No DOM here.

/** Numbers as the browser's locale writes them ("12,345"). */
export const nf = new Intl.NumberFormat();

export const plural = (n, one, many) => `${nf.format(n)} ${n === 1 ? one : many || one + 's'}`;

export function initials(name) {
  if (!name) return '';
  const words = name.trim().split(/\s+/).filter(Boolean);
  return words.slice(0, 2).map(w => Array.from(w)[0].toUpperCase()).join('');
}

export function personName(p) {
  return p && p.display_name ? p.display_name : null;
}

export function timeAgo(ms) {
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
export const yearOf = text => (typeof text === 'string' && /^\d{4}-/.test(text) ? text.slice(0, 4) : null);

/** "1 June 2019, 14:03 (+02:00)"; "(UTC)" for Z; no offset part when the photo records none. */
export function takenText(text) {
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
export const TAKEN_SOURCES = { exif: 'from EXIF', xmp: 'from XMP', mtime: 'file date (no date in the photo)' };

/** The years a person's photos span: "2009–2024", "2019" when it is one year, '' when nothing is dated. */
export function yearsText(first, last) {
  const a = yearOf(first), b = yearOf(last);
  if (!a || !b) return a || b || '';
  return a === b ? a : `${a}–${b}`;
}

/** A fraction (clamped to 0…1) as a CSS percentage: face boxes on a photo, progress bars. */
export const pct = x => `${(Math.max(0, Math.min(1, x)) * 100).toFixed(3)}%`;
