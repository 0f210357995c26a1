// spool's dashboard. Everything shown comes from GET /v1/events (Server-Sent Events, read with
// fetch so that the token travels as a header); every change is a POST with the token. Names
// come from users' files, so text is only ever set with textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'spool-token';
let token = sessionStorage.getItem(TOKEN_KEY) || '';
let backoff = 1000;

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function authHeaders(extra) {
  const h = Object.assign({}, extra);
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}

// ---- formatting ----
function bytes(n) {
  if (!Number.isFinite(n) || n <= 0) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  const i = Math.min(units.length - 1, Math.floor(Math.log(n) / Math.log(1024)));
  const v = n / Math.pow(1024, i);
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i];
}
function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return (h ? h + ':' : '') + mm + ':' + String(sec).padStart(2, '0');
}
const percent = (f) => Math.round((f || 0) * 100) + ' %';
const basename = (p) => String(p || '').split('/').filter(Boolean).pop() || String(p || '');
function badge(state) {
  return el('span', { class: 'badge s-' + state, 'data-state': state, text: state });
}

// ---- actions ----
function notify(message) {
  const n = $('notice');
  n.textContent = message;
  n.hidden = !message;
}

async function post(path, body, done) {
  try {
    const res = await fetch(path, {
      method: 'POST',
      headers: authHeaders({ 'Content-Type': 'application/json' }),
      body: JSON.stringify(body || {}),
    });
    const reply = await res.json().catch(() => ({}));
    if (res.status === 401) return askToken('The token was refused.');
    notify(res.ok ? done : (reply.error || ('the daemon answered ' + res.status)));
  } catch (e) {
    notify('The daemon could not be reached: ' + e.message);
  }
}

const cancelJob = (id, name) => post('/v1/jobs/' + encodeURIComponent(id) + '/cancel', {}, 'Cancelled ' + name + '.');
const retryFile = (path) => post('/v1/retry', { path }, 'Retrying ' + basename(path) + '.');
const setFolder = (folder, pause) =>
  post('/v1/folders/' + (pause ? 'pause' : 'resume'), { folder }, (pause ? 'Paused ' : 'Resumed ') + folder + '.');

// ---- rendering ----
// Sections are rebuilt on each event; the focused button is found again by its key so that
// keyboard users keep their place.
function replace(container, nodes) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.getAttribute('data-key') : null;
  container.replaceChildren(...nodes);
  if (key) {
    const again = container.querySelector('[data-key="' + CSS.escape(key) + '"]');
    if (again) again.focus();
  }
}

function renderTotals(t) {
  const jobs = t.jobs || {};
  const cards = [
    ['Running', jobs.running || 0], ['Queued', (jobs.queued || 0) + (t.files_queued || 0)],
    ['Succeeded', jobs.succeeded || 0], ['Failed', jobs.failed || 0],
    ['Cancelled', jobs.cancelled || 0], ['Bytes in', bytes(t.bytes_in)],
    ['Bytes out', bytes(t.bytes_out)], ['Space saved', bytes(t.bytes_saved)],
    ['Encode time', duration(t.encode_seconds)], ['Cache hits', t.cache_hits || 0],
    ['Cache size', bytes(t.cache_bytes)],
  ];
  replace($('totals'), cards.map(([k, v]) =>
    el('div', { 'data-total': k }, el('dt', { text: k }), el('dd', { text: v }))));
}

function renderLive(body) {
  const jobs = body.running || [];
  if (!jobs.length) {
    replace($('running'), [el('p', { class: 'empty', text: 'Nothing is running.' })]);
    return;
  }
  replace($('running'), jobs.map((j) => {
    const name = basename(j.input);
    const tasks = Object.entries(j.tasks || {});
    const done = tasks.filter(([, t]) => t.done).length;
    return el('article', { 'data-job': j.id, 'data-progress': j.fraction.toFixed(3) },
      el('div', { class: 'row' },
        el('h3', { text: name, title: j.input }),
        el('button', { class: 'danger', type: 'button', 'data-key': 'cancel-' + j.id,
          'data-action': 'cancel', 'aria-label': 'Cancel ' + name, onclick: () => cancelJob(j.id, name) }, 'Cancel')),
      el('progress', { max: 1, value: j.fraction, 'aria-label': 'Progress of ' + name }),
      el('p', { class: 'meta' },
        percent(j.fraction) + ' · ' + duration(j.elapsed_s) + ' elapsed · ETA ' + duration(j.eta_s) +
        ' · ' + done + ' of ' + j.tasks_planned + ' tasks done' +
        (j.rungs && j.rungs.length ? ' · ' + j.rungs.join(', ') : '')),
      tasks.length ? el('ul', { class: 'tasks', 'aria-label': 'Tasks of ' + name },
        tasks.map(([task, t]) => el('li', { 'data-task': task },
          el('span', { text: task }),
          el('progress', { max: 1, value: t.fraction, 'aria-label': task }),
          el('span', { class: 'meta' }, t.done
            ? (t.reused ? 'reused' : 'done')
            : percent(t.fraction) + (t.fps ? ' · ' + t.fps.toFixed(0) + ' fps' : '') +
              (t.speed ? ' · ' + t.speed.toFixed(2) + '×' : '') + ' · ETA ' + duration(t.eta_s))))) : null,
      j.notes && j.notes.length ? el('p', { class: 'meta', text: j.notes[j.notes.length - 1] }) : null);
  }));
}

function renderQueued(state) {
  const queued = (state.jobs || []).filter((j) => j.status === 'queued' || j.status === 'interrupted');
  const t = state.totals || {};
  const nodes = queued.map((j) => el('article', { 'data-job': j.id },
    el('div', { class: 'row' }, el('h3', { text: basename(j.input), title: j.input }), badge(j.status)),
    el('p', { class: 'meta', text: j.workflow })));
  const waiting = (t.files_queued || 0), settling = (t.files_settling || 0);
  if (waiting || settling) {
    nodes.push(el('p', { class: 'meta', text: waiting + ' file(s) admitted and waiting for a slot; ' +
      settling + ' still being written (settling)' }));
  }
  replace($('queued'), nodes.length ? nodes : [el('p', { class: 'empty', text: 'Nothing is waiting.' })]);
}

function renderAttention(files) {
  if (!files.length) {
    replace($('attention'), [el('p', { class: 'empty', text: 'Nothing needs attention.' })]);
    return;
  }
  replace($('attention'), files.map((f) => {
    const name = basename(f.path);
    return el('article', { 'data-file': f.path, 'data-state': f.status },
      el('div', { class: 'row' },
        el('h3', { text: name, title: f.path }), badge(f.status),
        el('button', { type: 'button', 'data-key': 'retry-' + f.path, 'data-action': 'retry',
          'aria-label': 'Retry ' + name, onclick: () => retryFile(f.path) }, 'Retry')),
      el('p', { class: 'meta', text: f.attempts + ' attempt(s) · ' + f.workflow }),
      el('p', { class: 'reason', text: f.reason || 'no reason recorded' }),
      f.stderr_tail && f.stderr_tail.length
        ? el('details', {}, el('summary', { text: 'Last ffmpeg lines' }), el('pre', { text: f.stderr_tail.join('\n') }))
        : null);
  }));
}

function renderFolders(folders) {
  if (!folders.length) {
    replace($('folders'), [el('p', { class: 'empty', text: 'No folder is watched.' })]);
    return;
  }
  replace($('folders'), [el('div', { class: 'scroll' }, el('table', {},
    el('thead', {}, el('tr', {}, el('th', { text: 'Folder' }), el('th', { text: 'Workflow', class: 'hide-narrow' }),
      el('th', { text: 'State' }), el('th', { text: '' }))),
    el('tbody', {}, folders.map((f) => {
      const paused = f.state === 'paused';
      return el('tr', { 'data-folder': f.folder, 'data-state': f.state },
        el('td', { class: 'name', text: f.folder }),
        el('td', { class: 'hide-narrow', text: f.workflow }),
        el('td', {}, badge(f.state), f.settling ? el('span', { class: 'meta', text: ' ' + f.settling + ' settling' }) : null),
        el('td', {}, el('button', { type: 'button', 'data-key': 'folder-' + f.folder,
          'data-action': paused ? 'resume' : 'pause', 'aria-label': (paused ? 'Resume ' : 'Pause ') + f.folder,
          onclick: () => setFolder(f.folder, !paused) }, paused ? 'Resume' : 'Pause')));
    }))))]);
}

function renderFinished(jobs) {
  const finished = jobs.filter((j) => !['queued', 'running', 'interrupted'].includes(j.status));
  if (!finished.length) {
    replace($('finished'), [el('p', { class: 'empty', text: 'No job has finished yet.' })]);
    return;
  }
  replace($('finished'), [el('div', { class: 'scroll' }, el('table', {},
    el('thead', {}, el('tr', {}, el('th', { text: 'Input' }), el('th', { text: 'State' }),
      el('th', { class: 'num', text: 'In' }), el('th', { class: 'num', text: 'Out' }),
      el('th', { class: 'num hide-narrow', text: 'Time' }), el('th', { class: 'num hide-narrow', text: 'Reused' }),
      el('th', { text: 'Outputs' }))),
    el('tbody', {}, finished.map((j) => {
      const r = j.result;
      const outputs = r ? r.outputs.map((o) => el('a', { href: o.href, target: '_blank', rel: 'noopener',
        text: o.profile + (o.height ? ' ' + o.height + 'p' : ''), title: o.path + ' · ' + bytes(o.bytes) })) : [];
      if (r) outputs.push(el('a', { href: r.manifest_href, target: '_blank', rel: 'noopener', text: 'manifest' }));
      return el('tr', { 'data-job': j.id, 'data-state': j.status },
        el('td', { class: 'name', text: basename(j.input), title: j.input }),
        el('td', {}, badge(j.status), j.error ? el('div', { class: 'meta', text: j.error }) : null),
        el('td', { class: 'num', text: bytes(j.input_size) }),
        el('td', { class: 'num', text: r ? bytes(r.bytes_out) : '–' }),
        el('td', { class: 'num hide-narrow', text: r ? duration(r.elapsed_s) : duration((j.updated_ms - j.created_ms) / 1000) }),
        el('td', { class: 'num hide-narrow', text: r && r.reused_from ? 'all' : j.reused_chunks + '/' + j.chunks }),
        el('td', { class: 'links' }, outputs));
    }))))]);
}

function renderState(state) {
  if (state.error) {
    notify(state.error);
    return;
  }
  renderTotals(state.totals || {});
  renderQueued(state);
  renderAttention(state.attention || []);
  renderFolders(state.folders || []);
  renderFinished(state.jobs || []);
}

// ---- the event stream ----
function setConnection(state, text) {
  const c = $('connection');
  c.dataset.state = state;
  c.textContent = text;
}

function askToken(message) {
  setConnection('down', 'waiting for the token');
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('token').focus();
}

function dispatch(frame) {
  let type = 'message';
  const data = [];
  for (const line of frame.split('\n')) {
    if (line.startsWith(':')) continue;
    if (line.startsWith('event:')) type = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (!data.length) return;
  const body = JSON.parse(data.join('\n'));
  if (type === 'state') renderState(body);
  else if (type === 'live') renderLive(body);
}

async function follow() {
  const res = await fetch('/v1/events', { headers: authHeaders({ Accept: 'text/event-stream' }), cache: 'no-store' });
  if (res.status === 401) {
    const had = Boolean(token);
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    askToken(had ? 'The token was refused.' : '');
    return false;
  }
  if (!res.ok || !res.body) throw new Error('the daemon answered ' + res.status);
  setConnection('live', 'live');
  backoff = 1000;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n/g, '\n');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(frame);
    }
  }
  return true;
}

async function connect() {
  for (;;) {
    let again = true;
    try {
      again = await follow();
    } catch (e) {
      setConnection('down', 'connection lost (' + e.message + '); retrying');
    }
    if (!again) return;
    setConnection('down', 'reconnecting…');
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 10000);
  }
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = $('token').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token').value = '';
  $('login').hidden = true;
  setConnection('connecting', 'connecting…');
  connect();
});

if (document.body.dataset.tokenRequired === 'true' && !token) askToken('');
else connect();
