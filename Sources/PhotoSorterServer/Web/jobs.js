// The Jobs page: ingest a folder, the folders the service follows (watch mode), and the progress, failures and
// skipped files of recent jobs.

import { api, isAbort } from './api.js';
import { h } from './dom.js';
import { nf, pct, plural, timeAgo } from './format.js';
import { view } from './router.js';
import { showError, toast } from './ui.js';

export async function pageJobs(ctx) {
  const path = h('input', { class: 'input grow', type: 'text', name: 'path', placeholder: '/home/me/Pictures', required: true,
                            autocomplete: 'off', spellcheck: 'false', 'aria-label': 'Folder to ingest', 'data-testid': 'ingest-path' });
  const submit = h('button', { class: 'btn primary', type: 'submit', 'data-testid': 'ingest-submit' }, 'Ingest');
  const roots = h('p', { class: 'muted small roots', 'data-testid': 'allowed-roots' });
  const form = h('form', { class: 'ingest-form card', 'data-testid': 'ingest-form' },
    h('h2', { class: 'card-title', text: 'Ingest a folder' }),
    h('div', { class: 'row' }, path, submit), roots);
  const list = h('div', { class: 'jobs', 'data-testid': 'jobs-list' });
  const watcher = watcherCard();
  view.append(h('div', { class: 'page-head' }, h('h1', { text: 'Jobs' })), form, watcher.el,
              h('h2', { class: 'section-title', text: 'Recent jobs' }), list);

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
      const [res, watch] = await Promise.all([ctx.get('/ingest-jobs?limit=50'), ctx.get('/watch').catch(err => {
        if (isAbort(err)) throw err;
        return null; // the jobs still show when the watcher cannot be read
      })]);
      if (!ctx.alive()) return;
      render(res.jobs);
      watcher.update(watch);
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

// The watcher (watch mode): the folders followed, what it has seen, its last reconciliation, and what it found
// moved, missing, restored or copied. Hidden when the service follows no folder.
function watcherCard() {
  const roots = h('ul', { class: 'watch-roots', 'data-testid': 'watch-roots' });
  const counts = h('p', { class: 'job-counts muted small', 'data-testid': 'watch-counts' });
  const files = h('p', { class: 'job-counts small', 'data-testid': 'watch-files' });
  const last = h('p', { class: 'muted small', 'data-testid': 'watch-reconciliation' });
  const el = h('section', { class: 'watch card', hidden: true, 'data-testid': 'watcher' },
    h('h2', { class: 'card-title', text: 'Following folders' }), roots, files, counts, last);
  function update(w) {
    el.hidden = !(w && w.active);
    if (el.hidden) return;
    roots.replaceChildren(...w.roots.map(r => h('li', { class: 'watch-root', 'data-available': String(r.available) },
      h('span', { class: 'path', text: r.path }),
      r.available ? null : h('span', { class: 'status s-warn', text: 'unavailable — photos kept as they are' }))));
    files.textContent = [`${nf.format(w.moved)} moved`, `${nf.format(w.missing)} missing`, `${nf.format(w.restored)} restored`,
                         `${plural(w.copies, 'copy', 'copies')}`].join(' · ');
    counts.textContent = [
      `${plural(w.events_seen, 'event')} seen`,
      w.pending ? `${plural(w.pending, 'file')} settling` : null,
      w.folders_waiting ? `${plural(w.folders_waiting, 'folder')} waiting` : null,
      `${plural(w.watches, 'folder')} watched`,
      w.overflows ? `${plural(w.overflows, 'queue overflow')}` : null,
      w.watch_limit_hits ? `watch limit reached ${plural(w.watch_limit_hits, 'time')}` : null,
    ].filter(Boolean).join(' · ');
    const r = w.last_reconciliation;
    last.textContent = r ? `Last reconciliation ${timeAgo(r.at)} (${r.reason}); then every ${duration(w.reconcile_seconds)}.`
                         : 'No reconciliation yet.';
    if (r) last.title = new Date(r.at).toLocaleString();
  }
  return { el, update };
}

function duration(seconds) {
  if (seconds % 3600 === 0) return plural(seconds / 3600, 'hour');
  if (seconds % 60 === 0) return plural(seconds / 60, 'minute');
  return plural(seconds, 'second');
}
