// The dashboard's pages: one section each, chosen by the address's `#/page`.

import * as connections from './connections.js';
import * as live from './live.js';
import * as rules from './rules.js';
import * as stateView from './state.js';
import * as tryIt from './try.js';

const pages = { live, try: tryIt, rules, connections, state: stateView };
const started = new Set();

/** Shows the page the address names; `moved`: the user navigated, so its heading takes the focus. */
function route(moved) {
  const match = /^#\/([a-z]+)/.exec(location.hash);
  if (!match && location.hash && location.hash !== '#/') return; // an in-page link (skip link)
  const name = match && pages[match[1]] ? match[1] : 'live';
  for (const section of document.querySelectorAll('.page')) {
    section.hidden = section.id !== `page-${name}`;
  }
  for (const link of document.querySelectorAll('nav a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const page = pages[name];
  if (!started.has(name)) {
    started.add(name);
    page.start();
  }
  if (page.show) page.show();
  if (moved === true) document.getElementById(`${name}-title`).focus();
  document.title = `${document.getElementById(`${name}-title`).textContent} · Switchboard`;
}

window.addEventListener('hashchange', () => route(true));
// The feed runs whatever page is shown, so that no event is missed while on another page.
started.add('live');
live.start();
route(false);
