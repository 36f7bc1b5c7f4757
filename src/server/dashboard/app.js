// The pipeline-ledger dashboard: plain ES2020, no framework, no build step.
//
// It is served under a strict Content-Security-Policy (no inline script, no inline style), so
// every element is built with createElement / createElementNS and filled with textContent:
// company names, notes and reasons are free text from producers and are never parsed as HTML.
// Sizes that come from data are set through the CSSOM (el.style.width), which the policy allows.
//
// Hooks for the browser test:
// - each page's root element has id="page-<name>" (funnel, reps, retention, ranking,
//   qualification, pipeline, customer, login);
// - body[data-ready] is "0" while a page loads, "1" once its data is rendered, "error" when the
//   API answered with an error (shown in the page);
// - each figure compared with the API carries data-field="<JSON path>" (dot-separated, array
//   indexes as numbers, as in the document the page fetched) and data-value="<the JSON value>"
//   ("" for null). On the customer page the two documents are told apart by the data-doc
//   attribute ("report" or "history") of the section holding the figure.
// - every definition button carries data-def="<key>" (the keys of /v1/definitions).
'use strict';

const state = { session: null, defs: new Map(), token: 0, popFor: null };

/* ---------- DOM helpers ---------- */

/** An HTML element. `props` are element properties (className, textContent, href, ...), plus
 *  `dataset` and ARIA attributes; children are nodes or strings (text, never markup). */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null) continue;
    if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'role' || k.startsWith('aria-')) node.setAttribute(k, v);
    else node[k] = v;
  }
  return append(node, children);
}

/** An SVG element; attributes are set as attributes (never `style`). */
function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return append(node, children);
}

function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false || c === '') continue;
    node.append(typeof c === 'object' ? c : String(c));
  }
  return node;
}

function mount(node) {
  document.getElementById('main').replaceChildren(node);
}

function setReady(value) {
  document.body.dataset.ready = value;
}

/** Navigates to `hash`, rendering again when it is already the current one. */
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

/* ---------- Words and numbers ---------- */

const STAGES = {
  start: 'Start', lead: 'Lead', first_visit: 'First visit', demo: 'Demo',
  negotiation: 'Negotiation', won: 'Won', lost: 'Lost',
};
const MATRIX_ORDER = Object.keys(STAGES);
// Lifecycle states in the order the rules match them (README, Lifecycle), with their definitions.
const STATES = {
  dormant: { name: 'Dormant', def: 'customer.state_dormant' },
  re_engaged: { name: 'Re-engaged', def: 'customer.state_re_engaged' },
  retained: { name: 'Retained', def: 'customer.state_retained' },
  won: { name: 'Won', def: 'customer.state_won' },
  negotiating: { name: 'Negotiating', def: 'customer.state_open' },
  demoed: { name: 'Demoed', def: 'customer.state_open' },
  visited: { name: 'Visited', def: 'customer.state_open' },
  lead: { name: 'Lead', def: 'customer.state_open' },
  lost: { name: 'Lost', def: 'customer.state_lost' },
};
const EVENTS = {
  LeadSourced: 'Lead sourced', FirstVisitMade: 'First visit', DemoGiven: 'Demo given',
  NegotiationHeld: 'Negotiation held', ContractSigned: 'Contract signed',
  FollowUpLogged: 'Follow-up', DealLost: 'Deal lost', DealReopened: 'Deal reopened',
  CustomerReassigned: 'Customer reassigned', EventCorrected: 'Correction',
};

const words = (token) => (token == null ? '' : String(token).replace(/_/g, ' '));
const stageName = (stage) => STAGES[stage] || words(stage);
const stateName = (st) => (STATES[st] ? STATES[st].name : words(st));
const pct = (rate) => `${(rate * 100).toFixed(1)}%`;
const days = (v) => (v == null ? '–' : v.toFixed(1));
/** "2026-02-17 13:09 UTC" from an RFC 3339 UTC time; dates pass through. */
const fmtTime = (t) => (t == null ? '–' : t.length > 10 ? `${t.slice(0, 10)} ${t.slice(11, 16)} UTC` : t);
const fmtRatio = (r) => (r == null ? '–' : `${r.rate == null ? '–' : pct(r.rate)} (${r.count}/${r.of})`);

/** Minor units as an amount in its currency ("97,500.00 USD", "29,265,000 JPY"). */
function money(minor, currency) {
  let digits = 2;
  try {
    digits = new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits;
  } catch (_) {
    // A code Intl does not know: two decimals, as most currencies have.
  }
  const amount = (minor / 10 ** digits).toLocaleString('en', {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  });
  return `${amount} ${currency}`;
}

/* ---------- Figures and their definitions ---------- */

/** A figure as shown, with the hooks a test compares with the API. */
function fig(path, value, text) {
  const shown = text !== undefined ? text : value == null ? '–' : String(value);
  return h('span', {
    className: 'fig', textContent: shown,
    dataset: { field: path, value: value == null ? '' : String(value) },
  });
}

/** A rate as "72.7% (186/256)", each number its own figure; "–" when it has no meaning. */
function ratio(path, r) {
  if (r == null) return fig(path, null, '–');
  return h('span', { className: 'ratio' },
    fig(`${path}.rate`, r.rate, r.rate == null ? '–' : pct(r.rate)),
    ' (', fig(`${path}.count`, r.count), '/', fig(`${path}.of`, r.of), ')');
}

/** A conversion bar under a rate. */
function bar(rate, className = 'bar') {
  const fill = h('span');
  fill.style.width = `${Math.max(0, Math.min(1, rate || 0)) * 100}%`;
  return h('span', { className }, fill);
}

/** A median / 90th percentile pair with the number of deals it is over. */
function spread(path, sp) {
  return h('span', { className: 'spread' },
    fig(`${path}.median`, sp.median, days(sp.median)), ' / ',
    fig(`${path}.p90`, sp.p90, days(sp.p90)),
    h('span', { className: 'muted' }, ' (', fig(`${path}.count`, sp.count), ')'));
}

/** The (i) button of a figure: hovering shows its definition (title), clicking toggles it.
 *  A plain "i" drawn in a circle by the style sheet: the character ⓘ is missing from the fonts
 *  of many Linux desktops, where it showed as an empty box. */
function def(key) {
  const d = state.defs.get(key);
  return h('button', {
    type: 'button', className: 'info', textContent: 'i',
    title: d ? `${d.label}: ${d.text}` : key, dataset: { def: key },
    'aria-label': `Definition of ${d ? d.label : key}`, 'aria-expanded': 'false',
  });
}

function togglePopover(btn) {
  const pop = document.getElementById('popover');
  if (state.popFor === btn && !pop.hidden) return hidePopover();
  hidePopover();
  const d = state.defs.get(btn.dataset.def);
  pop.replaceChildren(h('strong', { textContent: d ? d.label : btn.dataset.def }), ' ',
    d ? d.text : 'No definition.');
  pop.hidden = false;
  // Below the button, kept inside the viewport's width.
  const r = btn.getBoundingClientRect();
  const left = Math.max(8, Math.min(r.left, document.documentElement.clientWidth - pop.offsetWidth - 8));
  pop.style.left = `${left + window.scrollX}px`;
  pop.style.top = `${r.bottom + window.scrollY + 6}px`;
  btn.setAttribute('aria-expanded', 'true');
  state.popFor = btn;
}

function hidePopover() {
  document.getElementById('popover').hidden = true;
  if (state.popFor) state.popFor.setAttribute('aria-expanded', 'false');
  state.popFor = null;
}

function onClick(e) {
  const btn = e.target.closest('button.info');
  if (btn) togglePopover(btn);
  else if (!e.target.closest('#popover')) hidePopover();
}

/* ---------- Building blocks ---------- */

/** A card with a title and its definition. */
function section({ title, def: key, className = 'card' }, ...children) {
  return h('section', { className }, h('h2', {}, title, key ? [' ', def(key)] : []), children);
}

/** Labelled figures: items are { label, def, value }. */
function figureList(items) {
  return h('dl', { className: 'figures' },
    items.map((it) => [h('dt', {}, it.label, it.def ? [' ', def(it.def)] : []), h('dd', {}, it.value)]));
}

/** A table in a wrapper that scrolls sideways, so that no page is wider than the screen.
 *  Columns are { head, def, num, th, wrap, cell(row, index) }. */
function table(cols, rows) {
  const head = h('tr', {}, cols.map((c) => h('th', { scope: 'col', className: c.num ? 'num' : '' },
    // A no-break space: a heading that wraps keeps its (i) with its last word.
    c.head, c.def ? ['\u00a0', def(c.def)] : [])));
  const body = rows.map((row, i) => h('tr', {}, cols.map((c) =>
    h(c.th ? 'th' : 'td', { className: c.num ? 'num' : c.wrap ? 'wrap' : '' }, c.cell(row, i)))));
  return h('div', { className: 'table-wrap' }, h('table', {}, h('thead', {}, head), h('tbody', {}, body)));
}

function customerLink(id) {
  return h('a', { href: `#/customer/${encodeURIComponent(id)}`, textContent: id });
}

function errorBox(err) {
  return h('p', { className: 'error', role: 'alert', textContent: err && err.message ? err.message : String(err) });
}

/** The line every report says about itself: position, lag, source, filters, clock. */
function metaLine(meta) {
  const parts = [
    ['log position ', fig('meta.position', meta.position), ' ', def('meta.position')],
    ['head ', fig('meta.head_position', meta.head_position), ', lag ', fig('meta.lag', meta.lag), ' ', def('meta.lag')],
    ['from ', fig('meta.source', meta.source, meta.source === 'replay' ? 'a replay of the log' : 'the read models'),
      ' ', def('meta.source')],
  ];
  if (meta.as_of) parts.push(['as it was on ', fig('meta.as_of', meta.as_of, fmtTime(meta.as_of)), ' ', def('meta.as_of')]);
  if (meta.known_at) {
    parts.push(['as we knew it on ', fig('meta.known_at', meta.known_at, fmtTime(meta.known_at)), ' ', def('meta.known_at')]);
  }
  parts.push(['clock ', fig('meta.evaluated_at', meta.evaluated_at, fmtTime(meta.evaluated_at)), ' ', def('meta.evaluated_at')]);
  return h('p', { className: 'meta' }, parts.map((p, i) => [i ? ' · ' : '', p]));
}

/** A form of report parameters. Submitting puts them in the page's hash, so that a view can
 *  be bookmarked and reloaded. Fields are { name, label, def, type, options, placeholder }. */
function controls(page, params, fields) {
  const form = h('form', { className: 'controls' });
  for (const f of fields) {
    const id = `f-${f.name}`;
    let input;
    if (f.options) {
      input = h('select', { id, name: f.name }, f.options.map(([value, text]) => h('option', { value, textContent: text })));
      input.value = params.get(f.name) || f.options[0][0];
    } else {
      input = h('input', { id, name: f.name, type: f.type || 'text', value: params.get(f.name) || '', placeholder: f.placeholder || '' });
    }
    form.append(h('div', { className: 'field' }, h('label', { htmlFor: id }, f.label, f.def ? [' ', def(f.def)] : []), input));
  }
  form.append(h('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    const qs = q.toString();
    go(`#/${page}${qs ? `?${qs}` : ''}`);
  });
  return form;
}

const DATE_FILTERS = [
  { name: 'as_of', label: 'The pipeline as it was on', type: 'date', def: 'meta.as_of' },
  { name: 'known_at', label: 'as we knew it on', type: 'date', def: 'meta.known_at' },
];

/** The parameters of `params` named in `keys`, as a query string. */
function query(params, keys) {
  const q = new URLSearchParams();
  for (const k of keys) if (params.get(k)) q.set(k, params.get(k));
  const qs = q.toString();
  return qs ? `?${qs}` : '';
}

/* ---------- API and session ---------- */

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

/** The `detail` of an application/problem+json answer, else its status line. */
async function problemDetail(res) {
  try {
    const p = await res.json();
    return p.detail || p.title || `${res.status} ${res.statusText}`;
  } catch (_) {
    return `${res.status} ${res.statusText}`;
  }
}

async function api(path, init = {}) {
  const res = await fetch(path, { credentials: 'same-origin', headers: { Accept: 'application/json' }, ...init });
  if (res.status === 401) {
    showLogin('Your session has ended: sign in again.');
    throw new ApiError(401, 'Not signed in.');
  }
  if (!res.ok) throw new ApiError(res.status, await problemDetail(res));
  return res.status === 204 ? null : res.json();
}

/** Asks who is signed in; shows the login form if nobody is, else the page the hash names. */
async function start() {
  setReady('0');
  try {
    const res = await fetch('/v1/session', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
    if (res.status === 401) return showLogin();
    if (!res.ok) throw new ApiError(res.status, await problemDetail(res));
    const session = await res.json();
    const defs = await api('/v1/definitions');
    state.defs = new Map(defs.map((d) => [d.key, d]));
    state.session = session;
  } catch (err) {
    if (err.status === 401) return undefined; // api() has shown the login form
    mount(errorBox(err));
    return setReady('error');
  }
  showSession();
  if (!/^#\/./.test(location.hash)) history.replaceState(null, '', '#/funnel');
  return route();
}

function showLogin(message) {
  state.token += 1; // a page still loading must not render over the form
  state.session = null;
  hidePopover();
  document.getElementById('nav').hidden = true;
  document.getElementById('session').replaceChildren();
  const input = h('input', { type: 'password', id: 'token', name: 'token', autocomplete: 'current-password', required: true });
  const error = h('p', { className: 'error', role: 'alert', hidden: !message, textContent: message || '' });
  const form = h('form', { className: 'login card' }, h('h1', {}, 'Sign in'),
    h('label', { htmlFor: 'token' }, 'Access token'), input, h('button', { type: 'submit' }, 'Sign in'), error);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    error.hidden = true;
    try {
      // The server answers with an HttpOnly cookie: the token is kept nowhere in the page.
      const res = await fetch('/v1/session', {
        method: 'POST', credentials: 'same-origin',
        headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token: input.value }),
      });
      if (!res.ok) throw new ApiError(res.status, await problemDetail(res));
      input.value = '';
      await start();
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  });
  mount(h('div', { id: 'page-login', className: 'page' }, form));
  setReady('1');
  input.focus();
}

function showSession() {
  document.getElementById('nav').hidden = false;
  const out = h('button', { type: 'button', className: 'link' }, 'Sign out');
  out.addEventListener('click', async () => {
    const res = await fetch('/v1/session', { method: 'DELETE', credentials: 'same-origin' });
    if (res.ok || res.status === 401) showLogin('Signed out.');
    else document.getElementById('main').prepend(errorBox(await problemDetail(res)));
  });
  document.getElementById('session').replaceChildren(
    h('span', { className: 'who' }, state.session.name), ' ',
    h('span', { className: 'role' }, state.session.role), ' ', out);
}

/* ---------- Routing ---------- */

const PAGES = { funnel: funnelPage, reps: repsPage, retention: retentionPage, ranking: rankingPage, qualification: qualificationPage, pipeline: pipelinePage, customer: customerPage };

/** `#/name/arg?query` → { name, arg, params }. */
function parseHash() {
  const [path, qs = ''] = location.hash.replace(/^#\/?/, '').split('?');
  const [name, ...rest] = path.split('/');
  let arg = rest.join('/');
  try {
    arg = decodeURIComponent(arg);
  } catch (_) {
    // A malformed escape: use the id as typed.
  }
  return { name: PAGES[name] ? name : 'funnel', arg, params: new URLSearchParams(qs) };
}

async function route() {
  if (!state.session) return;
  hidePopover();
  const { name, arg, params } = parseHash();
  // Each render has a token; an answer that arrives after the user moved on is dropped.
  const token = ++state.token;
  const live = () => token === state.token;
  setReady('0');
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.page === name);
  const root = h('div', { id: `page-${name}`, className: 'page' });
  mount(root);
  try {
    await PAGES[name](root, { arg, params, live });
    if (live()) setReady('1');
  } catch (err) {
    if (!live()) return;
    root.append(errorBox(err));
    setReady('error');
  }
}

/* ---------- Funnel ---------- */

const FUNNEL_FIELDS = [
  { name: 'by', label: 'Group by', def: 'funnel.group', options: [['', 'none'], ['source', 'source'], ['rep', 'rep'], ['cohort', 'cohort']] },
  { name: 'cohort', label: 'Cohorts of', options: [['month', 'month'], ['quarter', 'quarter'], ['year', 'year']] },
  { name: 'from', label: 'Leads from', type: 'date', def: 'funnel.deals' },
  { name: 'to', label: 'to', type: 'date' },
  ...DATE_FILTERS,
];

async function funnelPage(root, ctx) {
  root.append(h('h1', {}, 'Funnel'), controls('funnel', ctx.params, FUNNEL_FIELDS));
  const r = await api(`/v1/reports/funnel${query(ctx.params, ['by', 'cohort', 'from', 'to', 'as_of', 'known_at'])}`);
  if (!ctx.live()) return;
  root.append(metaLine(r.meta));
  if (r.rep_credit) {
    root.append(h('p', { className: 'note' }, 'Deals are grouped by the rep who owned the customer when the lead was sourced (',
      fig('rep_credit', r.rep_credit, words(r.rep_credit)), ') ', def('funnel.rep_credit')));
  }
  root.append(h('div', { className: 'cards' }, cohortCard(r.total.cohort, 'total.cohort'), periodCard(r.total.period, 'total.period')));
  const windowed = Boolean(r.params.from || r.params.to);
  const detail = h('div', { id: 'funnel-detail' });
  const show = (i) => detail.replaceChildren(...(i < 0 ? funnelDetail(r.total, 'total', windowed)
    : funnelDetail(r.groups[i], `groups.${i}`, windowed)));
  if (r.groups.length) {
    if (r.params.by === 'cohort') root.append(trendChart(r.groups));
    root.append(groupsTable(r.groups));
    const pick = h('select', { id: 'group-pick' }, h('option', { value: '-1', textContent: 'all deals' }),
      r.groups.map((g, i) => h('option', { value: String(i), textContent: words(g.key) })));
    pick.addEventListener('change', () => show(Number(pick.value)));
    root.append(h('div', { className: 'controls' }, h('div', { className: 'field' },
      h('label', { htmlFor: 'group-pick' }, 'Stages, time and moves of'), pick)));
  }
  root.append(detail);
  show(-1);
}

function cohortCard(c, p) {
  return section({ title: 'Cohort view', def: 'funnel.deals' }, figureList([
    { label: 'Deals', def: 'funnel.deals', value: fig(`${p}.deals`, c.deals) },
    { label: 'Won', def: 'funnel.won', value: fig(`${p}.won`, c.won) },
    { label: 'Lost deals', def: 'funnel.lost', value: fig(`${p}.lost`, c.lost) },
    { label: 'Open', def: 'funnel.open', value: fig(`${p}.open`, c.open) },
    { label: 'Win rate (cohort)', def: 'funnel.win_rate_cohort', value: ratio(`${p}.win_rate`, c.win_rate) },
    { label: 'Open share', def: 'funnel.open_share', value: ratio(`${p}.open_share`, c.open_share) },
  ]));
}

function periodCard(pd, p) {
  const entries = Object.entries(pd.entries).sort(([a], [b]) => MATRIX_ORDER.indexOf(a) - MATRIX_ORDER.indexOf(b));
  return section({ title: 'Period view', def: 'funnel.new_deals' }, figureList([
    { label: 'New deals', def: 'funnel.new_deals', value: fig(`${p}.new_deals`, pd.new_deals) },
    { label: 'Won (period)', def: 'funnel.period_won', value: fig(`${p}.won`, pd.won) },
    { label: 'Losses (period)', def: 'funnel.period_lost', value: fig(`${p}.lost`, pd.lost) },
    { label: 'Lost for good', def: 'funnel.lost_final', value: fig(`${p}.lost_final`, pd.lost_final) },
    { label: 'Reopened', def: 'funnel.reopened', value: fig(`${p}.reopened`, pd.reopened) },
    { label: 'Win rate (period)', def: 'funnel.win_rate_period', value: ratio(`${p}.win_rate`, pd.win_rate) },
    {
      label: 'Stage entries', def: 'funnel.period_entries',
      value: entries.map(([st, n]) => h('span', { className: 'pair' }, `${stageName(st)} `, fig(`${p}.entries.${st}`, n))),
    },
  ]));
}

function groupsTable(groups) {
  const n = (key) => (g, i) => fig(`groups.${i}.cohort.${key}`, g.cohort[key]);
  return section({ title: 'Groups', def: 'funnel.group' }, table([
    { head: 'Group', th: true, cell: (g) => words(g.key) },
    { head: 'Deals', def: 'funnel.deals', num: true, cell: n('deals') },
    { head: 'Won', def: 'funnel.won', num: true, cell: n('won') },
    { head: 'Lost deals', def: 'funnel.lost', num: true, cell: n('lost') },
    { head: 'Open', def: 'funnel.open', num: true, cell: n('open') },
    { head: 'Win rate (cohort)', def: 'funnel.win_rate_cohort', num: true, cell: (g, i) => ratio(`groups.${i}.cohort.win_rate`, g.cohort.win_rate) },
    { head: 'Open share', def: 'funnel.open_share', num: true, cell: (g, i) => ratio(`groups.${i}.cohort.open_share`, g.cohort.open_share) },
    { head: 'New deals', def: 'funnel.new_deals', num: true, cell: (g, i) => fig(`groups.${i}.period.new_deals`, g.period.new_deals) },
    { head: 'Win rate (period)', def: 'funnel.win_rate_period', num: true, cell: (g, i) => ratio(`groups.${i}.period.win_rate`, g.period.win_rate) },
  ], groups));
}

/** Bars of the cohort win rate of each cohort, oldest first. */
function trendChart(groups) {
  const W = 640, H = 180, left = 36, top = 10;
  const bw = (W - left) / groups.length;
  const y = (rate) => top + (1 - rate) * (H - top);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H + 50}`, class: 'chart', role: 'img', 'aria-label': 'Win rate per cohort' });
  for (const t of [0, 0.25, 0.5, 0.75, 1]) {
    svg.append(s('line', { x1: left, x2: W, y1: y(t), y2: y(t), class: 'grid' }),
      s('text', { x: 0, y: y(t) + 4, class: 'axis' }, `${t * 100}%`));
  }
  groups.forEach((g, i) => {
    const wr = g.cohort.win_rate;
    const x = left + i * bw;
    const label = `${g.key}: win rate ${fmtRatio(wr)}`;
    if (wr.rate != null) {
      svg.append(s('rect', { x: x + bw * 0.15, y: y(wr.rate), width: bw * 0.7, height: H - y(wr.rate), class: 'bar-rate' },
        s('title', {}, label)));
    } else {
      svg.append(s('text', { x: x + bw / 2, y: H - 4, class: 'axis', 'text-anchor': 'middle' }, '–', s('title', {}, label)));
    }
    const lx = x + bw / 2, ly = H + 12;
    svg.append(s('text', { x: lx, y: ly, class: 'axis', 'text-anchor': 'end', transform: `rotate(-40 ${lx} ${ly})` }, g.key));
  });
  return section({ title: 'Win rate per cohort', def: 'funnel.win_rate_cohort' }, svg);
}

/** The funnel of a group: how far its deals got (cumulative conversion), as bars. */
function funnelChart(stages) {
  const W = 640, row = 34, labelW = 100, textW = 140, barW = W - labelW - textW;
  const svg = s('svg', { viewBox: `0 0 ${W} ${stages.length * row}`, class: 'chart', role: 'img', 'aria-label': 'Deals that reached each stage' });
  stages.forEach((st, i) => {
    const c = st.cumulative;
    const w = Math.max(1, (c.rate || 0) * barW);
    const mid = i * row + row / 2 + 4;
    svg.append(s('text', { x: 0, y: mid, class: 'axis' }, stageName(st.stage)),
      s('rect', { x: labelW + (barW - w) / 2, y: i * row + 4, width: w, height: row - 8, class: 'funnel-bar' },
        s('title', {}, `${stageName(st.stage)} or later: ${fmtRatio(c)}`)),
      s('text', { x: labelW + barW + 8, y: mid, class: 'axis' }, fmtRatio(c)));
  });
  return svg;
}

/** Stages, time in stage, losses and moves of one group (`gp`: its JSON path). */
function funnelDetail(g, gp, windowed) {
  const c = g.cohort, p = `${gp}.cohort`;
  const out = [
    section({ title: `Funnel — ${g.key === 'all' ? 'all deals' : words(g.key)}`, def: 'funnel.cumulative' }, funnelChart(c.stages)),
    section({ title: 'Stages', def: 'funnel.entered' }, stageTable(c.stages, `${p}.stages`)),
    section({ title: 'Time in stage (days)', def: 'funnel.latest_stay_days' },
      h('p', { className: 'hint' }, 'Each cell: median ', def('funnel.time_in_stage_median'), ' / 90th percentile ',
        def('funnel.time_in_stage_p90'), ' (deals measured ', def('funnel.time_in_stage_count'), ')'),
      timeTable(c.stages, `${p}.stages`)),
    h('div', { className: 'cards' },
      section({ title: 'Lost deals by stage', def: 'funnel.lost_by_stage' }, countTable(c.lost_by_stage, `${p}.lost_by_stage`,
        { head: 'Stage', def: 'funnel.stage' }, { head: 'Deals', def: 'funnel.lost' }, stageName, true)),
      section({ title: 'Lost deals by reason', def: 'funnel.lost_reasons' }, countTable(c.lost_by_reason, `${p}.lost_by_reason`,
        { head: 'Reason' }, { head: 'Deals', def: 'funnel.lost' }, words)),
      section({ title: 'Losses by reason (period)', def: 'funnel.period_lost_reasons' },
        countTable(g.period.lost_by_reason, `${gp}.period.lost_by_reason`, { head: 'Reason' },
          { head: 'Losses', def: 'funnel.period_lost' }, words))),
    section({ title: 'Transitions', def: 'funnel.transitions' }, matrix(c.transitions, `${p}.transitions`)),
  ];
  // Without a window the period's moves are the cohort's; shown only when they can differ.
  if (windowed) out.push(section({ title: 'Moves in the window', def: 'funnel.period_transitions' }, matrix(g.period.transitions, `${gp}.period.transitions`)));
  return out;
}

function stageTable(stages, p) {
  const n = (key) => (st, i) => fig(`${p}.${i}.${key}`, st[key]);
  const conv = (key) => (st, i) => [ratio(`${p}.${i}.${key}`, st[key]), st[key] ? bar(st[key].rate) : null];
  return table([
    { head: 'Stage', def: 'funnel.stage', th: true, cell: (st) => stageName(st.stage) },
    { head: 'Entered', def: 'funnel.entered', num: true, cell: n('entered') },
    { head: 'Advanced', def: 'funnel.advanced', num: true, cell: n('advanced') },
    { head: 'Lost here', def: 'funnel.lost_here', num: true, cell: n('lost_here') },
    { head: 'Moved back', def: 'funnel.moved_back', num: true, cell: n('moved_back') },
    { head: 'Still in', def: 'funnel.still_in', num: true, cell: n('still_in') },
    { head: 'Skipped', def: 'funnel.skipped', num: true, cell: n('skipped') },
    { head: 'Entries', def: 'funnel.entries', num: true, cell: n('entries') },
    { head: 'Re-entries', def: 'funnel.re_entries', num: true, cell: n('re_entries') },
    { head: 'Next step', def: 'funnel.next_step', num: true, cell: conv('next_step') },
    { head: 'Moved forward', def: 'funnel.moved_forward', num: true, cell: conv('moved_forward') },
    { head: 'Cumulative', def: 'funnel.cumulative', num: true, cell: conv('cumulative') },
  ], stages);
}

function timeTable(stages, p) {
  const sp = (key) => (st, i) => spread(`${p}.${i}.${key}`, st[key]);
  return table([
    { head: 'Stage', def: 'funnel.stage', th: true, cell: (st) => stageName(st.stage) },
    { head: 'Days to next', def: 'funnel.days_to_next', num: true, cell: sp('days_to_next') },
    { head: 'Latest stay', def: 'funnel.latest_stay_days', num: true, cell: sp('latest_stay_days') },
    { head: 'Total in stage', def: 'funnel.cumulative_days', num: true, cell: sp('cumulative_days') },
  ], stages);
}

/** A { name: count } object as a table, largest first (or in stage order). */
function countTable(counts, p, keyCol, countCol, name, inStageOrder = false) {
  const rows = Object.entries(counts || {});
  if (!rows.length) return h('p', { className: 'empty' }, 'None.');
  rows.sort(inStageOrder ? ([a], [b]) => MATRIX_ORDER.indexOf(a) - MATRIX_ORDER.indexOf(b) : ([, a], [, b]) => b - a);
  return table([
    { ...keyCol, th: true, cell: ([k]) => name(k) },
    { ...countCol, num: true, cell: ([k, v]) => fig(`${p}.${k}`, v) },
  ], rows);
}

/** What a cell of the transition matrix counts, in words. */
function moveWords(from, to) {
  if (from === 'start') return 'deals opened';
  if (to === 'lost') return 'loss events, reopened ones included';
  if (from === 'lost') return 'reopenings';
  const step = MATRIX_ORDER.indexOf(to) - MATRIX_ORDER.indexOf(from);
  return step === 1 ? 'moves to the next stage' : step > 1 ? 'forward moves that skip stages' : 'moves back';
}

/** The transitions as a from × to matrix; each cell is its entry of the JSON array. */
function matrix(transitions, p) {
  const names = [...new Set([...MATRIX_ORDER, ...transitions.flatMap((t) => [t.from, t.to])])];
  const froms = names.filter((n) => transitions.some((t) => t.from === n));
  const tos = names.filter((n) => transitions.some((t) => t.to === n));
  const at = new Map(transitions.map((t, i) => [`${t.from}>${t.to}`, i]));
  const cell = (to) => (from) => {
    const i = at.get(`${from}>${to}`);
    if (i === undefined) return '';
    const node = fig(`${p}.${i}.count`, transitions[i].count);
    node.title = `${stageName(from)} → ${stageName(to)}: ${moveWords(from, to)}`;
    return node;
  };
  if (!transitions.length) return h('p', { className: 'empty' }, 'No moves.');
  return table([
    { head: 'from \\ to', th: true, cell: (from) => stageName(from) },
    ...tos.map((to) => ({ head: stageName(to), num: true, cell: cell(to) })),
  ], froms);
}

/* ---------- Reps ---------- */

/** A count of one event type the rep performed; a type the rep did not perform is absent from
 *  the JSON and shown as 0 without a data-field. */
const typed = (type) => ({ row, i }) => (type in row.interactions ? fig(`rows.${i}.interactions.${type}`, row.interactions[type]) : '0');
const repNum = (key) => ({ row, i }) => fig(`rows.${i}.${key}`, row[key]);

const REP_COLS = [
  { head: 'Rep', th: true, cell: ({ row }) => row.rep },
  { head: 'Interactions', def: 'reps.interactions_total', num: true, cell: repNum('interactions_total') },
  { head: 'New leads', def: 'reps.new_leads', num: true, cell: repNum('new_leads') },
  { head: 'Visits', def: 'reps.interactions', num: true, cell: typed('FirstVisitMade') },
  { head: 'Demos', def: 'reps.interactions', num: true, cell: typed('DemoGiven') },
  { head: 'Negotiations', def: 'reps.interactions', num: true, cell: typed('NegotiationHeld') },
  { head: 'Contracts signed', def: 'reps.interactions', num: true, cell: typed('ContractSigned') },
  { head: 'Follow-ups', def: 'reps.interactions', num: true, cell: typed('FollowUpLogged') },
  { head: 'Customers touched', def: 'reps.customers_touched', num: true, cell: repNum('customers_touched') },
  { head: 'Won', def: 'reps.deals_won', num: true, cell: repNum('deals_won') },
  {
    head: 'Won value', def: 'reps.won_value', num: true,
    cell: ({ row, i }) => Object.entries(row.won_value_minor).map(([cur, v]) =>
      h('div', {}, fig(`rows.${i}.won_value_minor.${cur}`, v, money(v, cur)))),
  },
  { head: 'Lost', def: 'reps.deals_lost', num: true, cell: repNum('deals_lost') },
  { head: 'Win rate', def: 'reps.win_rate', num: true, cell: ({ row, i }) => ratio(`rows.${i}.win_rate`, row.win_rate) },
  { head: 'Days to close', def: 'reps.days_to_close', num: true, cell: ({ row, i }) => spread(`rows.${i}.days_to_close`, row.days_to_close) },
  { head: 'Overdue follow-ups', def: 'reps.overdue_followups', num: true, cell: repNum('overdue_followups') },
  { head: 'Reassigned in', def: 'reps.reassigned_in', num: true, cell: repNum('reassigned_in') },
  { head: 'Reassigned out', def: 'reps.reassigned_out', num: true, cell: repNum('reassigned_out') },
];

/** Basis points as a percentage with two decimals, as the CLI shows them. */
const bp = (n) => `${Math.floor(n / 100)}.${String(n % 100).padStart(2, '0')}%`;
/** One scorecard component: actual / target, then its attainment ("–" without one). */
const component = (key) => [
  {
    head: { activity: 'Interactions / target', results: 'Won / target', quality: 'Win rate / target' }[key],
    def: `scorecard.${key}`, num: true,
    cell: ({ row, i }) => key === 'quality'
      ? (row.deals_won + row.deals_lost ? [fig(`rows.${i}.quality.actual`, row.quality.actual, bp(row.quality.actual)), ' / ', fig(`rows.${i}.quality.target`, row.quality.target, bp(row.quality.target))] : '–')
      : [fig(`rows.${i}.${key}.actual`, row[key].actual), ' / ', fig(`rows.${i}.${key}.target`, row[key].target)],
  },
  {
    head: 'Attainment', def: 'scorecard.attainment', num: true,
    cell: ({ row, i }) => fig(`rows.${i}.${key}.attainment_bp`, row[key].attainment_bp,
      row[key].attainment_bp == null ? '–' : bp(row[key].attainment_bp)),
  },
];

const SCORECARD_COLS = [
  { head: 'Rank', num: true, cell: ({ row, i }) => fig(`rows.${i}.rank`, row.rank) },
  { head: 'Rep', th: true, cell: ({ row }) => row.rep },
  { head: 'Score', def: 'scorecard.score', num: true, cell: ({ row, i }) => fig(`rows.${i}.score_bp`, row.score_bp, bp(row.score_bp)) },
  {
    head: 'Movement', def: 'scorecard.movement', num: true,
    cell: ({ row, i }) => fig(`rows.${i}.movement`, row.movement,
      row.movement == null ? 'new' : row.movement > 0 ? `▲${row.movement}` : row.movement < 0 ? `▼${-row.movement}` : '='),
  },
  ...component('activity'),
  ...component('results'),
  ...component('quality'),
];

/** The quarter's scorecard, a document of its own (data-doc="scorecard"). */
function scorecardSection(card) {
  const title = `Scorecard ${card.quarter}${card.in_progress ? ' (in progress)' : ''}`;
  const sec = section({ title, def: 'scorecard.score' },
    h('p', { className: 'note' }, `Weights: activity ${card.weights.activity}, results ${card.weights.results}, quality ${card.weights.quality}; attainment capped at ${card.attainment_cap_percent}%.`),
    card.rows.length
      ? table(SCORECARD_COLS, card.rows.map((row, i) => ({ row, i })))
      : h('p', { className: 'empty' }, 'No rep in this quarter.'));
  sec.dataset.doc = 'scorecard';
  sec.id = 'scorecard';
  return sec;
}

async function repsPage(root, ctx) {
  root.append(h('h1', {}, 'Reps'), controls('reps', ctx.params, [
    { name: 'period', label: 'Period', def: 'reps.period', options: [['quarter', 'quarter'], ['year', 'year'], ['month', 'month'], ['week', 'week'], ['day', 'day']] },
    { name: 'rep', label: 'Rep', placeholder: 'all reps' },
  ]));
  const [r, card] = await Promise.all([
    api(`/v1/reports/reps${query(ctx.params, ['period', 'rep'])}`),
    api(`/v1/reports/scorecard${query(ctx.params, ['rep'])}`),
  ]);
  if (!ctx.live()) return;
  root.append(metaLine(r.meta), scorecardSection(card));
  // One table per period, the latest first; the rows keep their index in the JSON.
  const rows = r.rows.map((row, i) => ({ row, i }));
  const labels = [...new Set(r.rows.map((row) => row.period))].sort().reverse();
  if (!labels.length) root.append(h('p', { className: 'empty' }, 'No activity in this report.'));
  for (const label of labels) {
    const sec = section({ title: label, def: 'reps.period' }, table(REP_COLS, rows.filter((x) => x.row.period === label)));
    sec.dataset.period = label;
    root.append(sec);
  }
}

/* ---------- Retention ---------- */

async function retentionPage(root, ctx) {
  root.append(h('h1', {}, 'Retention'), controls('retention', ctx.params, [
    { name: 'period', label: 'Period', options: [['quarter', 'quarter'], ['year', 'year'], ['month', 'month']] },
    ...DATE_FILTERS,
  ]));
  const r = await api(`/v1/reports/retention${query(ctx.params, ['period', 'as_of', 'known_at'])}`);
  if (!ctx.live()) return;
  const rows = r.periods.flatMap((p, i) => Object.entries(p.revenue).map(([cur, split]) => ({ p, i, cur, split })));
  root.append(metaLine(r.meta), h('div', { className: 'cards' },
    section({ title: 'Won customers', def: 'retention.won_customers' }, figureList([
      { label: 'Won customers', value: fig('won_customers', r.won_customers), def: 'retention.won_customers' },
      { label: 'With a repeat order', value: ratio('repeat_customers', r.repeat_customers), def: 'retention.repeat_customers' },
      { label: 'Dormant now', value: ratio('dormant', r.dormant), def: 'retention.dormant' },
      { label: 'Came back after dormancy', value: ratio('reengaged', r.reengaged), def: 'retention.reengaged' },
      { label: 'Days to the first repeat order (median / p90)', value: spread('days_to_first_repeat_order', r.days_to_first_repeat_order), def: 'retention.days_to_first_repeat_order' },
    ])),
  ), h('p', { className: 'note' }, `Revenue only: ${r.costs}.`),
  section({ title: `Contracts and repeat orders per ${r.params.period}`, def: 'retention.first_contracts' }, table([
    { head: 'Period', th: true, cell: (p) => p.period },
    { head: 'Contracts', num: true, cell: (p, i) => fig(`periods.${i}.contracts`, p.contracts) },
    { head: 'First contracts', def: 'retention.first_contracts', num: true, cell: (p, i) => fig(`periods.${i}.first_contracts`, p.first_contracts) },
    { head: 'Repeat orders', def: 'retention.repeat_orders', num: true, cell: (p, i) => fig(`periods.${i}.repeat_orders`, p.repeat_orders) },
    { head: 'Repeat customers', num: true, cell: (p, i) => fig(`periods.${i}.repeat_customers`, p.repeat_customers) },
    { head: 'Kept customers', def: 'retention.kept_customers', num: true, cell: (p, i) => fig(`periods.${i}.kept_customers`, p.kept_customers) },
  ], r.periods)),
  ...costSection(r),
  section({ title: `Revenue per ${r.params.period} and currency`, def: 'retention.existing_share' }, table([
    { head: 'Period', th: true, cell: ({ p }) => p.period },
    { head: 'Currency', cell: ({ cur }) => cur },
    { head: 'New customers', num: true, cell: ({ i, cur, split }) => fig(`periods.${i}.revenue.${cur}.new_customers_minor`, split.new_customers_minor, money(split.new_customers_minor, cur)) },
    { head: 'Existing customers', num: true, cell: ({ i, cur, split }) => fig(`periods.${i}.revenue.${cur}.existing_customers_minor`, split.existing_customers_minor, money(split.existing_customers_minor, cur)) },
    { head: 'Existing share', def: 'retention.existing_share', num: true, cell: ({ i, cur, split }) => fig(`periods.${i}.revenue.${cur}.existing_share`, split.existing_share, split.existing_share == null ? '–' : pct(split.existing_share)) },
  ], rows)));
}

/** The cost to win and to keep a customer per period, when the policy records costs. */
function costSection(r) {
  const rows = r.periods.map((p, i) => ({ p, i })).filter(({ p }) => p.costs);
  if (!rows.length) return [];
  const per = (i, key, c) => fig(`periods.${i}.costs.${key}`, c[key], c[key] == null ? '–' : money(c[key], c.currency));
  return [section({ title: `Cost to win and to keep a customer per ${r.params.period}`, def: 'retention.cost_per_customer' }, table([
    { head: 'Period', th: true, cell: ({ p }) => p.period },
    { head: 'To win', num: true, cell: ({ p, i }) => per(i, 'to_win_minor', p.costs) },
    { head: 'To keep', num: true, cell: ({ p, i }) => per(i, 'to_keep_minor', p.costs) },
    { head: 'Per new customer', num: true, cell: ({ p, i }) => per(i, 'per_new_customer_minor', p.costs) },
    { head: 'Per kept customer', num: true, cell: ({ p, i }) => per(i, 'per_kept_customer_minor', p.costs) },
    { head: 'Keep / win', num: true, cell: ({ p, i }) => fig(`periods.${i}.costs.keep_to_win`, p.costs.keep_to_win, p.costs.keep_to_win == null ? '–' : p.costs.keep_to_win.toFixed(2)) },
  ], rows))];
}

/* ---------- Customer ranking ---------- */

async function rankingPage(root, ctx) {
  root.append(h('h1', {}, 'Customer ranking'), controls('ranking', ctx.params, [
    { name: 'period', label: 'Period', options: [['quarter', 'quarter'], ['year', 'year'], ['month', 'month']] },
    ...DATE_FILTERS,
  ]));
  const r = await api(`/v1/reports/ranking${query(ctx.params, ['period', 'as_of', 'known_at'])}`);
  if (!ctx.live()) return;
  const money_note = r.rates_version != null
    ? `Converted into one currency at the policy's rates, version ${r.rates_version}.`
    : (r.per_currency || '');
  root.append(metaLine(r.meta),
    h('p', { className: 'note' }, `Classes by ${r.classes_by}. ${money_note}`, ' ', def('ranking.rates_version')));
  const shareText = (v, n) => (v == null ? '–' : `${pct(v)} (${n})`);
  r.rankings.forEach((rk, i) => {
    const cur = rk.currency;
    const at = `rankings.${i}`;
    root.append(
      section({ title: `Revenue in ${cur} per ${r.params.period}: classes and the top 20%`, def: 'ranking.top_share' }, table([
        { head: 'Period', th: true, cell: (p) => p.period },
        { head: 'Customers', num: true, cell: (p, j) => fig(`${at}.periods.${j}.customers`, p.customers) },
        { head: 'Revenue', num: true, cell: (p, j) => fig(`${at}.periods.${j}.revenue_minor`, p.revenue_minor, money(p.revenue_minor, cur)) },
        { head: 'Top 20%', def: 'ranking.top_share', num: true, cell: (p, j) => fig(`${at}.periods.${j}.top_share`, p.top_share, shareText(p.top_share, p.top_customers)) },
        ...['A+', 'A', 'B', 'C'].map((cls, k) => ({
          head: cls, def: k === 0 ? 'ranking.class_share' : undefined, num: true,
          cell: (p, j) => fig(`${at}.periods.${j}.classes.${k}.share`, p.classes[k].share, shareText(p.classes[k].share, p.classes[k].customers)),
        })),
        { head: 'Unconverted', def: 'ranking.unconverted', wrap: true, cell: (p) => (p.unconverted.length ? p.unconverted.map((u) => `${money(u.amount_minor, u.currency)} (${u.events})`).join(', ') : '–') },
      ], rk.periods)),
      section({ title: `Customers of ${rk.listed_period || '–'} in ${cur}, best first`, def: 'ranking.class' }, table([
        { head: '#', num: true, cell: (c, k) => fig(`${at}.customers.${k}.rank`, c.rank) },
        { head: 'Customer', th: true, cell: (c) => customerLink(c.customer_id) },
        { head: 'Company', wrap: true, cell: (c) => c.company || '' },
        { head: 'Revenue', num: true, cell: (c, k) => fig(`${at}.customers.${k}.revenue_minor`, c.revenue_minor, money(c.revenue_minor, cur)) },
        { head: 'Share', num: true, cell: (c, k) => fig(`${at}.customers.${k}.share`, c.share, c.share == null ? '–' : pct(c.share)) },
        { head: 'Cumulative', num: true, cell: (c, k) => fig(`${at}.customers.${k}.cumulative_share`, c.cumulative_share, c.cumulative_share == null ? '–' : pct(c.cumulative_share)) },
        { head: 'Class', def: 'ranking.class', cell: (c, k) => fig(`${at}.customers.${k}.class`, c.class) },
        { head: `In ${rk.period_before || '–'}`, def: 'ranking.class_before', cell: (c, k) => fig(`${at}.customers.${k}.class_before`, c.class_before) },
        { head: 'Open deals', def: 'ranking.open_deals', num: true, cell: (c, k) => fig(`${at}.customers.${k}.open_deals`, c.open_deals) },
      ], rk.customers)),
      section({ title: `Class movement, ${rk.period_before || '–'} → ${rk.listed_period || '–'}`, def: 'ranking.movement' }, table([
        { head: 'From', th: true, cell: (m) => m.from },
        { head: 'To', cell: (m) => m.to },
        { head: 'Customers', num: true, cell: (m, k) => fig(`${at}.movement.${k}.customers`, m.customers) },
      ], rk.movement)),
    );
  });
}

/* ---------- Qualification ---------- */

async function qualificationPage(root, ctx) {
  root.append(h('h1', {}, 'Qualification'), controls('qualification', ctx.params, DATE_FILTERS));
  const r = await api(`/v1/reports/qualification${query(ctx.params, ['as_of', 'known_at'])}`);
  if (!ctx.live()) return;
  const outcomes = (path) => [
    { head: 'Deals', num: true, cell: (row, i) => fig(`${path(i)}.deals`, row.deals) },
    { head: 'Open', num: true, cell: (row, i) => fig(`${path(i)}.open`, row.open) },
    { head: 'Won', num: true, cell: (row, i) => fig(`${path(i)}.won`, row.won) },
    { head: 'Lost', num: true, cell: (row, i) => fig(`${path(i)}.lost`, row.lost) },
    { head: 'Win rate', def: 'qualification.win_rate', num: true, cell: (row, i) => ratio(`${path(i)}.win_rate`, row.win_rate) },
    { head: 'Conversion', def: 'qualification.conversion', num: true, cell: (row, i) => ratio(`${path(i)}.conversion`, row.conversion) },
  ];
  const rise = r.bands_rise == null ? 'not said: a band has too few decided deals' : r.bands_rise ? 'yes' : 'no';
  root.append(metaLine(r.meta),
    h('p', { className: 'note' }, `${r.without_worksheet} of ${r.deals} deals had no worksheet. A win rate needs ${r.sample_min} decided deals; below that only its counts are shown.`),
    section({ title: 'By worksheet score', def: 'qualification.win_rate' }, table([
      { head: 'Score', th: true, cell: (row) => (row.score == null ? 'none' : String(row.score)) },
      ...outcomes((i) => `by_score.${i}`),
    ], r.by_score)),
    section({ title: 'By criterion: met against not met', def: 'qualification.lift' }, table([
      { head: 'Criterion', th: true, cell: (c) => c.criterion.replace(/_/g, ' ') },
      { head: 'Met', num: true, cell: (c, i) => fig(`by_criterion.${i}.met.deals`, c.met.deals) },
      { head: 'Win rate met', num: true, cell: (c, i) => ratio(`by_criterion.${i}.met.win_rate`, c.met.win_rate) },
      { head: 'Not met', num: true, cell: (c, i) => fig(`by_criterion.${i}.not_met.deals`, c.not_met.deals) },
      { head: 'Win rate not met', num: true, cell: (c, i) => ratio(`by_criterion.${i}.not_met.win_rate`, c.not_met.win_rate) },
      { head: 'Lift', def: 'qualification.lift', num: true, cell: (c, i) => fig(`by_criterion.${i}.lift`, c.lift, c.lift == null ? '–' : c.lift.toFixed(2)) },
    ], r.by_criterion)),
    section({ title: `Calibration per score band (the win rates rise: ${rise})`, def: 'qualification.calibration' }, table([
      { head: 'Band', th: true, cell: (c) => c.band },
      { head: 'Decided', num: true, cell: (c, i) => fig(`calibration.${i}.decided`, c.decided) },
      { head: 'Observed', num: true, cell: (c, i) => ratio(`calibration.${i}.observed`, c.observed) },
      { head: 'Score as a chance', num: true, cell: (c, i) => fig(`calibration.${i}.score_as_chance`, c.score_as_chance, c.score_as_chance == null ? '–' : pct(c.score_as_chance)) },
    ], r.calibration)),
    section({ title: 'By the intent judged at the first visit', def: 'qualification.intent' }, table([
      { head: 'Intent', th: true, cell: (row) => (row.intent == null ? 'none' : String(row.intent)) },
      ...outcomes((i) => `by_intent.${i}`),
    ], r.by_intent)),
  );
}

/* ---------- Pipeline ---------- */

async function pipelinePage(root, ctx) {
  root.append(h('h1', {}, 'Pipeline'), controls('pipeline', ctx.params, DATE_FILTERS));
  const r = await api(`/v1/reports/pipeline${query(ctx.params, ['as_of', 'known_at'])}`);
  if (!ctx.live()) return;
  const order = Object.keys(STATES);
  const states = Object.entries(r.customers_by_state)
    .sort(([a], [b]) => (order.indexOf(a) + 1 || 99) - (order.indexOf(b) + 1 || 99));
  const maxOpen = Math.max(1, ...r.open_deals_by_stage.map(([, n]) => n));
  root.append(metaLine(r.meta), h('div', { className: 'cards' },
    section({ title: 'Customers by state', def: 'pipeline.customers_by_state' }, table([
      { head: 'State', th: true, cell: ([st]) => [stateName(st), STATES[st] ? [' ', def(STATES[st].def)] : []] },
      { head: 'Customers', num: true, cell: ([st, n]) => fig(`customers_by_state.${st}`, n) },
    ], states)),
    section({ title: 'Deals by status', def: 'pipeline.deals_by_status' }, table([
      { head: 'Status', th: true, cell: ([st]) => words(st) },
      { head: 'Deals', num: true, cell: ([st, n]) => fig(`deals_by_status.${st}`, n) },
    ], Object.entries(r.deals_by_status))),
    section({ title: 'Open deals by stage', def: 'pipeline.open_deals_by_stage' }, table([
      { head: 'Stage', def: 'funnel.stage', th: true, cell: ([st]) => stageName(st) },
      { head: 'Open deals', num: true, cell: ([, n], i) => [fig(`open_deals_by_stage.${i}.1`, n), bar(n / maxOpen)] },
    ], r.open_deals_by_stage)),
    // Not in the report yet (see the server's notes): shown when the JSON carries it.
    r.open_deals_by_owner ? section({ title: 'Open deals by owner', def: 'pipeline.open_deals_by_owner' }, table([
      { head: 'Owner', th: true, cell: ([o]) => o },
      { head: 'Open deals', num: true, cell: ([o, n]) => fig(`open_deals_by_owner.${o}`, n) },
    ], Object.entries(r.open_deals_by_owner))) : null));
  root.append(worklist(r), overdueSection(r.overdue_followups));
}

/** The stalled deals as a worklist: one row per deal with every reason it is stalled for,
 *  grouped under the rep owning the customer, the longest-stalled first. */
function worklist(r) {
  const deals = new Map();
  const add = (list, kind) => list.forEach((st, i) => {
    const key = JSON.stringify([st.customer_id, st.deal_id]);
    if (!deals.has(key)) deals.set(key, { ...st, reasons: [], age: 0 });
    const d = deals.get(key);
    d.reasons.push({ kind, st, path: `${kind}.${i}` });
    d.age = Math.max(d.age, st.days);
  });
  add(r.stalled_no_activity, 'stalled_no_activity');
  add(r.stalled_no_progress, 'stalled_no_progress');
  const owners = new Map();
  for (const d of deals.values()) owners.set(d.owner_rep, [...(owners.get(d.owner_rep) || []), d]);
  const sec = section({ title: `Stalled deals (${deals.size})`, def: 'pipeline.stalled' },
    h('p', { className: 'hint' }, 'Days stalled ', def('pipeline.stalled_days'), ' · limit of the stage ', def('pipeline.threshold_days')));
  if (!deals.size) sec.append(h('p', { className: 'empty' }, 'No stalled deals.'));
  for (const [owner, list] of [...owners].sort(([a], [b]) => a.localeCompare(b))) {
    list.sort((a, b) => b.age - a.age || a.customer_id.localeCompare(b.customer_id));
    sec.append(h('h3', {}, owner || 'no owner', ` — ${list.length} stalled deal${list.length === 1 ? '' : 's'}`),
      table(WORK_COLS, list));
  }
  return sec;
}

const REASONS = {
  stalled_no_activity: { text: 'No activity for ', since: 'last activity', def: 'pipeline.stalled_no_activity' },
  stalled_no_progress: { text: 'No stage change for ', since: 'in this stage since', def: 'pipeline.stalled_no_progress' },
};

const WORK_COLS = [
  { head: 'Customer', th: true, cell: (d) => customerLink(d.customer_id) },
  { head: 'Deal', cell: (d) => d.deal_id },
  { head: 'Stage', def: 'funnel.stage', cell: (d) => stageName(d.stage) },
  {
    head: 'Why', def: 'pipeline.stalled', wrap: true,
    cell: (d) => d.reasons.map(({ kind, st, path }) => h('div', { className: 'reason' },
      REASONS[kind].text, fig(`${path}.days`, st.days, st.days.toFixed(0)), ' days (limit ',
      fig(`${path}.threshold_days`, st.threshold_days), `), ${REASONS[kind].since} ${fmtTime(st.since)} `,
      def(REASONS[kind].def))),
  },
];

function overdueSection(list) {
  const sec = section({ title: `Overdue follow-ups (${list.length})`, def: 'pipeline.overdue_followups' });
  if (!list.length) return append(sec, [h('p', { className: 'empty' }, 'No overdue follow-ups.')]);
  return append(sec, [table([
    { head: 'Customer', th: true, cell: (o) => customerLink(o.customer_id) },
    { head: 'Deal', cell: (o) => o.deal_id },
    { head: 'Due on', cell: (o, i) => fig(`overdue_followups.${i}.due_on`, o.due_on) },
    { head: 'Owner on the due date', cell: (o) => o.owner_rep },
    { head: 'Days overdue', def: 'pipeline.days_overdue', num: true, cell: (o, i) => fig(`overdue_followups.${i}.days_overdue`, o.days_overdue) },
  ], list)]);
}

/* ---------- Customer ---------- */

async function customerPage(root, ctx) {
  const id = ctx.arg;
  const input = h('input', { id: 'customer-id', name: 'id', type: 'search', value: id, placeholder: 'customer id', required: true });
  const form = h('form', { className: 'controls' },
    h('div', { className: 'field' }, h('label', { htmlFor: 'customer-id' }, 'Customer id'), input),
    h('button', { type: 'submit' }, 'Open'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value.trim()) go(`#/customer/${encodeURIComponent(input.value.trim())}`);
  });
  root.append(h('h1', {}, id ? `Customer ${id}` : 'Customer'), form);
  if (!id) return;
  const path = `/v1/customers/${encodeURIComponent(id)}`;
  const [report, events] = await Promise.allSettled([api(`${path}/report`), api(`${path}/history`)]);
  if (!ctx.live()) return;
  if (report.status === 'rejected') throw report.reason;
  root.append(customerReport(report.value));
  if (events.status === 'fulfilled') root.append(historySection(events.value));
  else if (events.reason.status === 403) {
    root.append(h('section', { className: 'card', id: 'history-forbidden' }, h('h2', {}, 'Event history'),
      h('p', { className: 'note' }, 'Not shown: your role cannot see the event history (auditors and admins can).')));
  } else throw events.reason;
}

function customerReport(r) {
  const c = r.customer;
  const when = (key) => fig(`customer.${key}`, c[key], fmtTime(c[key]));
  const stored = c.state !== r.state_now
    ? [' (stored: ', fig('customer.state', c.state, stateName(c.state)), ' ', def('customer.state'), ')'] : [];
  const sec = h('div', { dataset: { doc: 'report' } }, metaLine(r.meta), h('div', { className: 'cards' },
    section({ title: c.company || c.customer_id }, figureList([
      { label: 'State', def: 'customer.state_now', value: [fig('state_now', r.state_now, stateName(r.state_now)), stored] },
      { label: 'Owner', def: 'customer.owner_rep', value: fig('customer.owner_rep', c.owner_rep) },
      { label: 'Current deal', def: 'customer.current_deal', value: fig('customer.current_deal_id', c.current_deal_id) },
      { label: 'Current stage', def: 'customer.current_stage', value: fig('customer.current_stage', c.current_stage, c.current_stage ? stageName(c.current_stage) : '–') },
      { label: 'Days in stage', def: 'customer.days_in_current_stage', value: fig('days_in_current_stage', r.days_in_current_stage, days(r.days_in_current_stage)) },
      { label: 'First seen', def: 'customer.first_seen_at', value: when('first_seen_at') },
      { label: 'Last interaction', def: 'customer.last_interaction_at', value: when('last_interaction_at') },
      { label: 'Next follow-up due', def: 'customer.next_followup_due', value: when('next_followup_due') },
      { label: 'Dormant after', def: 'customer.dormant_after', value: when('dormant_after') },
    ])),
    section({ title: 'Deals and events' }, figureList([
      { label: 'Open deals', def: 'customer.open_deals', value: fig('customer.open_deals', c.open_deals) },
      { label: 'Won deals', def: 'customer.won_deals', value: fig('customer.won_deals', c.won_deals) },
      { label: 'Lost deals', def: 'customer.lost_deals', value: fig('customer.lost_deals', c.lost_deals) },
      { label: 'Re-engagements', def: 'customer.reengagements', value: fig('customer.reengagements', c.reengagements) },
      { label: 'Events', def: 'customer.event_count', value: fig('customer.event_count', c.event_count) },
      { label: 'Last position', def: 'customer.last_position', value: fig('customer.last_position', c.last_position) },
    ]))));
  if (r.values.length) {
    sec.append(section({ title: 'Value' }, table([
      { head: 'Currency', th: true, cell: (v) => v.currency },
      { head: 'Contract value', def: 'customer.contracts_minor', num: true, cell: (v, i) => fig(`values.${i}.contracts_minor`, v.contracts_minor, money(v.contracts_minor, v.currency)) },
      { head: 'Contracts', def: 'customer.contract_count', num: true, cell: (v, i) => fig(`values.${i}.contract_count`, v.contract_count) },
      { head: 'Repeat orders', def: 'customer.repeat_orders_minor', num: true, cell: (v, i) => fig(`values.${i}.repeat_orders_minor`, v.repeat_orders_minor, money(v.repeat_orders_minor, v.currency)) },
    ], r.values)));
  }
  sec.append(section({ title: 'Deals' }, table([
    { head: 'Deal', th: true, cell: (d) => d.deal_id },
    { head: 'Source', cell: (d) => words(d.source) },
    { head: 'Opened', cell: (d) => fmtTime(d.opened_at) },
    { head: 'Owner at lead', cell: (d) => d.owner_at_open },
    { head: 'Status', def: 'customer.deal_status', cell: (d, i) => fig(`deals.${i}.status`, d.status) },
    { head: 'Stage', def: 'funnel.stage', cell: (d) => stageName(d.stage) },
    {
      head: 'Contract', def: 'customer.won_value', num: true,
      cell: (d, i) => (d.won_value_minor == null ? '' : [fig(`deals.${i}.won_value_minor`, d.won_value_minor, money(d.won_value_minor, d.won_currency)), ` (${d.won_owner || '–'})`]),
    },
    { head: 'Lost', cell: (d) => (d.lost_at ? `${words(d.lost_reason)}, ${fmtTime(d.lost_at)}` : '') },
    { head: 'Reopenings', def: 'customer.reopen_count', num: true, cell: (d, i) => fig(`deals.${i}.reopen_count`, d.reopen_count) },
  ], r.deals)));
  sec.append(section({ title: 'Stage history', def: 'customer.stay' }, table([
    { head: 'Deal', th: true, cell: (v) => v.deal_id },
    { head: 'Stage', def: 'funnel.stage', cell: (v) => stageName(v.stage) },
    { head: 'Entered', cell: (v) => `${fmtTime(v.entered_at)}, ${words(v.entry)}${v.from_stage ? ` from ${stageName(v.from_stage)}` : ''}` },
    { head: 'Left', cell: (v) => (v.exited_at ? `${fmtTime(v.exited_at)}, ${words(v.exit)}${v.to_stage ? ` to ${stageName(v.to_stage)}` : ''}${v.lost_reason ? ` (${words(v.lost_reason)})` : ''}` : 'still in it') },
    { head: 'Days', def: 'customer.stay_days', num: true, cell: (v, i) => fig(`stage_history.${i}.days`, v.days, days(v.days)) },
  ], r.stage_history)));
  if (r.followups.length) {
    sec.append(section({ title: 'Follow-ups due', def: 'customer.followup_due' }, table([
      { head: 'Due on', th: true, cell: (f, i) => fig(`followups.${i}.due_on`, f.due_on) },
      { head: 'Deal', cell: (f) => f.deal_id },
      { head: 'Owner on the due date', cell: (f) => f.owner_rep },
      { head: 'Met', cell: (f) => (f.fulfilled_at ? fmtTime(f.fulfilled_at) : 'not yet') },
    ], r.followups)));
  }
  return sec;
}

/** One line saying what an event says (as the CLI's history table does). */
function summary(type, d = {}) {
  switch (type) {
    case 'LeadSourced': return `Lead from ${words(d.source)} (${d.company})`;
    case 'FirstVisitMade': return `Visit: ${d.visit?.purpose} → ${d.visit?.actual_outcome} (intent ${d.intent_level})`;
    case 'DemoGiven': return `Demo of ${(d.products_shown || []).join(', ')}`;
    case 'NegotiationHeld': {
      const o = d.objections || [];
      return `Negotiation: ${o.length} objection(s), ${o.filter((x) => x.resolved).length} resolved`;
    }
    case 'ContractSigned': return `Contract ${d.value ? money(d.value.amount_minor, d.value.currency) : ''} for ${d.term_months} months`;
    case 'FollowUpLogged': return `Follow-up (${words(d.kind)}): ${d.outcome}${d.order_value ? `, order ${money(d.order_value.amount_minor, d.order_value.currency)}` : ''}${d.next_due_on ? `, next due ${d.next_due_on}` : ''}`;
    case 'DealLost': return `Lost at ${stageName(d.stage)} (${words(d.reason)})`;
    case 'DealReopened': return `Reopened: ${d.reason}`;
    case 'CustomerReassigned': return `Reassigned ${d.from_rep_id} → ${d.to_rep_id}: ${d.reason}`;
    default: return EVENTS[type] || type;
  }
}

/** A button that scrolls to an event of the timeline and flashes it (the hash is the route). */
function jumpTo(eventId, text) {
  const btn = h('button', { type: 'button', className: 'link', textContent: text });
  btn.addEventListener('click', () => {
    const target = document.getElementById(`ev-${eventId}`);
    if (!target) return;
    target.scrollIntoView({ block: 'center', behavior: 'smooth' });
    target.classList.remove('flash');
    void target.offsetWidth; // restart the animation
    target.classList.add('flash');
  });
  return btn;
}

function historySection(events) {
  const byId = new Map(events.map((e) => [e.event_id, e]));
  const fixes = new Map(); // corrected event id → the corrections naming it, in log order
  for (const e of events) {
    if (e.type === 'EventCorrected') fixes.set(e.data.corrected_event_id, [...(fixes.get(e.data.corrected_event_id) || []), e]);
  }
  const name = (e) => `${EVENTS[e.type] || e.type}, revision ${e.revision}`;
  const item = (e, i) => {
    const corr = e.type === 'EventCorrected' ? e.data : null;
    const by = fixes.get(e.event_id) || [];
    const latest = by[by.length - 1];
    const cls = ['event', corr ? 'correction' : '', latest ? (latest.data.correction.action === 'retract' ? 'retracted' : 'amended') : ''];
    const late = (Date.parse(e.recorded_at) - Date.parse(e.occurred_at)) / 86400000;
    let what;
    if (corr) {
      const target = byId.get(corr.corrected_event_id);
      const action = corr.correction.action;
      what = [action === 'retract' ? 'Retracts ' : 'Amends ', jumpTo(corr.corrected_event_id, target ? name(target) : corr.corrected_event_id),
        `: ${corr.reason}`, ' ', def('history.correction'),
        action === 'amend' && corr.correction.replacement
          ? h('div', { className: 'replacement' }, 'Now reads: ', summary(corr.correction.replacement.type, corr.correction.replacement.data)) : null];
    } else {
      what = summary(e.type, e.data);
    }
    return h('li', { id: `ev-${e.event_id}`, className: cls.filter(Boolean).join(' ') },
      h('div', { className: 'event-head' }, h('strong', {}, EVENTS[e.type] || e.type), e.data.deal_id ? ` · ${e.data.deal_id}` : '',
        h('span', { className: 'muted' }, ' · revision ', fig(`${i}.revision`, e.revision), ' ', def('history.revision'),
          ' · position ', fig(`${i}.position`, e.position), ' ', def('history.position'))),
      h('div', { className: 'times' },
        'occurred ', fig(`${i}.occurred_at`, e.occurred_at, fmtTime(e.occurred_at)), ' ', def('history.occurred_at'),
        ' · recorded ', fig(`${i}.recorded_at`, e.recorded_at, fmtTime(e.recorded_at)), ' ', def('history.recorded_at'),
        e.recorded_by ? ` by ${e.recorded_by}` : '',
        late >= 1 ? h('span', { className: 'badge' }, `logged ${Math.floor(late)} day${late >= 2 ? 's' : ''} later`) : null),
      h('div', { className: 'what' }, what),
      by.length ? h('div', { className: 'fixed-by' }, by.map((f, k) => [k ? '; ' : '',
        f.data.correction.action === 'retract' ? 'Retracted by ' : 'Amended by ', jumpTo(f.event_id, `revision ${f.revision}`),
        k === by.length - 1 && by.length > 1 ? ' (the latest, which counts)' : ''])) : null,
      h('details', {}, h('summary', {}, 'Data'), h('pre', { textContent: JSON.stringify(e.data, null, 2) })));
  };
  const sec = section({ title: `Event history (${events.length})`, def: 'history.correction' },
    h('ol', { className: 'timeline' }, events.map(item)));
  sec.dataset.doc = 'history';
  return sec;
}

/* ---------- Start ---------- */

window.addEventListener('hashchange', route);
document.addEventListener('click', onClick);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape') hidePopover();
});
start();
