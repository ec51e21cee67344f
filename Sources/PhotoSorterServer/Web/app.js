// photo-sorter web pages: People, Person, Photo, Review, Jobs.
// Plain browser JavaScript (ES modules, loaded from /ui/), no build step, no third-party code; everything comes from
// this service. This module is the entry: it maps the routes to their pages and starts the router.
//
// Ground rules:
// - Every string from the server reaches the page through textContent/attributes (the `h` helper), never innerHTML.
// - Every page render gets a `ctx` (route context). Leaving the page aborts its reads, disconnects its observers and
//   stops its timers, so a slow answer for an old page can never paint over the new one.
// - Writes are never aborted by navigation and never applied optimistically: the page changes after the server
//   says yes, so a refused action changes nothing.
//
// Modules: api.js (requests, errors, the token page), router.js (the page on screen), ui.js (toasts, dialogs, the
// person picker, the pager), dom.js (elements, thumbnails), format.js (text); a module per page.

import { pageJobs } from './jobs.js';
import { pagePeople } from './people.js';
import { pagePerson } from './person.js';
import { pagePhoto } from './photo.js';
import { pageReview } from './review.js';
import { startRouting } from './router.js';

startRouting([
  [/^#\/people$/, 'people', pagePeople],
  [/^#\/person\/(\d+)$/, 'people', pagePerson],
  [/^#\/photo\/(\d+)$/, 'people', pagePhoto],
  [/^#\/review$/, 'review', pageReview],
  [/^#\/jobs$/, 'jobs', pageJobs],
]);
