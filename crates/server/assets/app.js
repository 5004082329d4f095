// Fracta's dashboard. Plain JavaScript, no dependencies. Every text from an agent goes into
// the page with textContent (never as HTML), so a model that prints `<script>` shows the
// characters. Live data comes over Server-Sent Events; nothing polls the server.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  csrf: null,
  agents: new Map(), // id -> ForestAgent
  selected: null,
  forest: null, // EventSource
  stream: null, // EventSource of the selected agent
  renderQueued: false,
  calls: new Map(), // tool call id -> element (selected agent)
  shown: 0,
};
const MAX_ROWS = 2000;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

async function api(method, path, body) {
  const headers = { 'X-CSRF-Token': state.csrf || '' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(path, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (!r.ok) {
    const msg = data && data.error ? data.error.message : `${r.status} ${r.statusText}`;
    throw new Error(msg);
  }
  return data;
}

// ---- login -------------------------------------------------------------------------------

async function boot() {
  const m = /(?:^#|&)code=([0-9A-Za-z]+)/.exec(location.hash);
  let r;
  if (m) {
    // The code works once: drop it from the address bar (and history) at once.
    history.replaceState(null, '', location.pathname);
    r = await fetch('/dashboard/session', {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: m[1] }),
    });
  } else {
    r = await fetch('/dashboard/session', { credentials: 'same-origin' });
  }
  if (!r.ok) {
    let msg = 'Not logged in: run `fracta dashboard` and open the link it prints.';
    try { const b = await r.json(); if (b.error) msg = b.error.message; } catch (_) { /* keep */ }
    const p = $('login');
    p.textContent = msg;
    p.hidden = false;
    $('conn').textContent = 'not logged in';
    $('conn').className = 'conn down';
    document.body.dataset.state = 'login-refused';
    return;
  }
  state.csrf = (await r.json()).csrf_token;
  $('main').hidden = false;
  $('spawn-open').disabled = false;
  document.body.dataset.state = 'ready';
  wire();
  openForest();
  setInterval(tick, 1000);
}

// ---- the forest --------------------------------------------------------------------------

function openForest() {
  const es = new EventSource('/v1/forest/stream');
  state.forest = es;
  const conn = $('conn');
  es.addEventListener('hello', (e) => {
    const h = JSON.parse(e.data);
    conn.textContent = h.resumed_from ? `live (resumed from ${h.resumed_from})` : 'live';
    conn.className = 'conn live';
    conn.dataset.resumedFrom = h.resumed_from || '';
  });
  es.addEventListener('present', (e) => {
    const ids = new Set(JSON.parse(e.data));
    for (const id of [...state.agents.keys()]) if (!ids.has(id)) state.agents.delete(id);
    queueRender();
  });
  es.addEventListener('agents', (e) => {
    for (const f of JSON.parse(e.data)) {
      state.agents.set(f.agent.id, f);
      // The selected agent runs again (resumed): follow its new events.
      if (f.agent.id === state.selected && isLive(f.agent)
        && (!state.stream || state.stream.readyState === EventSource.CLOSED)) {
        followAgent(f.agent.id, state.lastSeq);
      }
    }
    queueRender();
  });
  es.addEventListener('removed', (e) => {
    state.agents.delete(JSON.parse(e.data));
    queueRender();
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) {
      conn.textContent = 'disconnected (the session may have ended: run `fracta dashboard`)';
    } else {
      conn.textContent = 'reconnecting…';
    }
    conn.className = 'conn down';
  };
}

function isLive(a) { return ['running', 'starting', 'queued'].includes(a.status); }

function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    renderForest();
    renderAgent();
  });
}

function statusWord(f) {
  if (f.waiting_for_input) return ['waiting for input', 'st-waiting'];
  const s = f.agent.status;
  return [s, `st-${s}`];
}

function cost(a) {
  const c = parseFloat(a.cost_usd || '0');
  return Number.isFinite(c) ? c : 0;
}

function money(c) { return `$${c.toFixed(4)}`; }

function tokens(a) {
  const u = a.usage || {};
  return (u.input_tokens || 0) + (u.output_tokens || 0);
}

function elapsed(a) {
  const start = Date.parse(a.started_at || a.created_at);
  const end = a.ended_at ? Date.parse(a.ended_at) : Date.now();
  const s = Math.max(0, Math.round((end - start) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`;
}

function children() {
  const kids = new Map();
  const roots = [];
  for (const f of state.agents.values()) {
    const p = f.agent.parent_id;
    if (p && state.agents.has(p)) {
      if (!kids.has(p)) kids.set(p, []);
      kids.get(p).push(f);
    } else {
      roots.push(f);
    }
  }
  const byCreated = (x, y) => (x.agent.created_at < y.agent.created_at ? -1 : 1);
  roots.sort((x, y) => -byCreated(x, y)); // newest tree first
  for (const v of kids.values()) v.sort(byCreated);
  return { roots, kids };
}

function subtreeCost(id, kids) {
  let c = cost(state.agents.get(id).agent);
  for (const k of kids.get(id) || []) c += subtreeCost(k.agent.id, kids);
  return c;
}

function renderForest() {
  const began = performance.now();
  const { roots, kids } = children();
  const focused = document.activeElement && document.activeElement.dataset
    ? document.activeElement.dataset.id : null;
  const tree = $('forest');
  const frag = document.createDocumentFragment();
  let total = 0;
  let live = 0;
  const node = (f, level) => {
    const a = f.agent;
    const [word, cls] = statusWord(f);
    const sub = kids.get(a.id) || [];
    const mine = cost(a);
    const tc = sub.length ? subtreeCost(a.id, kids) : mine;
    if (['running', 'starting', 'queued'].includes(a.status)) live += 1;
    const btn = el('button', {
      type: 'button', class: 'node', 'data-id': a.id, 'data-status': word,
      'aria-selected': String(state.selected === a.id), tabindex: '-1',
    },
    el('span', { class: `badge ${cls}`, text: word }),
    el('span', { class: 'task', text: a.task }),
    el('span', { class: 'cost', title: 'cost (with its subtree)', text: sub.length ? `${money(mine)} · tree ${money(tc)}` : money(mine) }),
    el('span', { class: 'meta', 'data-elapsed': a.id, text: `${a.runtime} · ${a.id.slice(0, 10)} · ${elapsed(a)} · ${tokens(a)} tokens` }));
    const li = el('li', { role: 'treeitem', 'aria-level': String(level), 'data-agent': a.id, 'aria-expanded': sub.length ? 'true' : undefined }, btn);
    if (!sub.length) li.removeAttribute('aria-expanded');
    if (sub.length) {
      const ul = el('ul', { role: 'group' });
      for (const k of sub) ul.append(node(k, level + 1));
      li.append(ul);
    }
    return li;
  };
  for (const r of roots) {
    total += subtreeCost(r.agent.id, kids);
    frag.append(node(r, 1));
  }
  tree.replaceChildren(frag);
  $('forest-empty').hidden = state.agents.size > 0;
  $('totals').textContent = `${state.agents.size} agents · ${live} live · ${money(total)}`;
  // Roving tabindex: one stop in the tab order, arrows move inside.
  const nodes = [...tree.querySelectorAll('.node')];
  const want = nodes.find((n) => n.dataset.id === (focused || state.selected)) || nodes[0];
  if (want) want.tabIndex = 0;
  if (focused) {
    const again = nodes.find((n) => n.dataset.id === focused);
    if (again) again.focus();
  }
  document.body.dataset.agents = String(state.agents.size);
  // For the benchmark: when the forest was last drawn, and how long that took (ms).
  document.body.dataset.renderedAt = String(Math.round(performance.now()));
  document.body.dataset.renderMs = String(Math.round(performance.now() - began));
  if (!document.body.dataset.firstRender && state.agents.size > 0) {
    document.body.dataset.firstRender = String(Math.round(performance.now()));
  }
}

function tick() {
  for (const span of document.querySelectorAll('[data-elapsed]')) {
    const f = state.agents.get(span.dataset.elapsed);
    if (f && !f.agent.ended_at) {
      const a = f.agent;
      span.textContent = `${a.runtime} · ${a.id.slice(0, 10)} · ${elapsed(a)} · ${tokens(a)} tokens`;
    }
  }
}

// ---- one agent ---------------------------------------------------------------------------

function select(id) {
  if (state.selected === id) return;
  state.selected = id;
  if (state.stream) state.stream.close();
  state.calls = new Map();
  state.shown = 0;
  state.lastSeq = 0;
  $('timeline').replaceChildren();
  $('timeline-note').textContent = '';
  $('diff-files').replaceChildren();
  $('diff-stat').textContent = '';
  $('diff-head').textContent = '';
  $('action-msg').textContent = '';
  showTab('timeline');
  queueRender();
  followAgent(id, 0);
}

// Stream an agent's events after `after` (the browser resumes a dropped stream itself, with
// Last-Event-ID).
function followAgent(id, after) {
  if (state.stream) state.stream.close();
  const es = new EventSource(`/v1/agents/${encodeURIComponent(id)}/events/stream?after=${after}`);
  state.stream = es;
  $('timeline-note').textContent = '';
  const kinds = ['session', 'message', 'reasoning', 'tool_call', 'tool_result', 'step', 'usage',
    'error', 'status', 'runtime', 'unknown'];
  for (const k of kinds) es.addEventListener(k, (e) => { if (state.stream === es) addEvent(JSON.parse(e.data)); });
  es.addEventListener('end', () => {
    es.close();
    if (state.stream === es) $('timeline-note').textContent = 'The agent has ended; its events are all here.';
  });
}

function text(v) {
  if (v == null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

function addEvent(ev) {
  if (ev.seq <= state.lastSeq) return;
  state.lastSeq = ev.seq;
  const p = ev.payload || {};
  const li = el('li', { class: `k-${ev.kind}`, 'data-seq': String(ev.seq), 'data-kind': ev.kind },
    el('span', { class: 'seq', text: String(ev.seq) }),
    el('span', { class: 'kind', text: ev.kind }));
  const body = el('div', { class: 'body' });
  switch (ev.kind) {
    case 'message':
      body.textContent = `${p.role === 'user' ? 'you' : 'agent'}: ${p.text || ''}`;
      break;
    case 'reasoning':
      body.append(el('details', {}, el('summary', { text: 'reasoning' }), el('pre', { text: p.text || '' })));
      break;
    case 'tool_call': {
      const d = el('details', { class: 'call' }, el('summary', { text: `${p.name} ${JSON.stringify(p.input ?? null).slice(0, 120)}` }),
        el('pre', { text: text(p.input) }));
      body.append(d);
      if (p.id) state.calls.set(p.id, d);
      break;
    }
    case 'tool_result': {
      const d = el('details', { class: 'result' },
        el('summary', { text: `${p.is_error ? 'error from' : 'result of'} ${p.name || p.id || 'a tool'} (${(p.output || '').length} chars)` }),
        el('pre', { text: p.output || '' }));
      const call = p.id && state.calls.get(p.id);
      if (call) { call.append(d); return; }
      body.append(d);
      break;
    }
    case 'step':
      body.textContent = `step ${p.phase}`;
      break;
    case 'usage':
      body.textContent = `${p.input_tokens} in · ${p.output_tokens} out · ${p.cached_tokens} cached${p.cost_usd != null ? ` · ${money(p.cost_usd)}` : ''}`;
      break;
    case 'error':
      body.textContent = p.message || text(p);
      break;
    case 'status':
      body.textContent = `${p.status}${p.detail ? `: ${p.detail}` : ''}`;
      break;
    case 'session':
      body.textContent = `session ${p.resume_token || ''}${p.model ? ` (${p.model})` : ''}`;
      break;
    case 'runtime':
      body.textContent = p.name || '';
      break;
    default:
      body.textContent = `${p.reason || ''} ${ev.raw || ''}`;
  }
  li.append(body);
  const list = $('timeline');
  list.append(li);
  state.shown += 1;
  if (list.childElementCount > MAX_ROWS) {
    list.firstElementChild.remove();
    $('timeline-note').textContent = `Showing the last ${MAX_ROWS} events (fracta logs ${state.selected} has them all).`;
  }
}

function renderAgent() {
  const f = state.selected && state.agents.get(state.selected);
  $('agent').hidden = !f;
  $('agent-none').hidden = !!f;
  if (!f) return;
  const a = f.agent;
  const [word, cls] = statusWord(f);
  $('agent-title').replaceChildren(el('span', { class: `badge ${cls}`, id: 'agent-status', text: word }), ` ${a.task}`);
  const facts = [
    ['id', a.id], ['runtime', `${a.runtime} (${a.adapter}, ${a.mode})`], ['model', a.model || '—'],
    ['parent', a.parent_id || '—'], ['branch', a.branch || '—'], ['elapsed', elapsed(a)],
    ['tokens', `${a.usage.input_tokens} in · ${a.usage.output_tokens} out · ${a.usage.cached_tokens} cached`],
    ['cost', money(cost(a))],
  ];
  $('agent-facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: v })]));
  $('agent-result').hidden = !a.result;
  $('agent-result').textContent = a.result || '';
  $('agent-error').hidden = !a.error;
  $('agent-error').textContent = a.error || '';
  const live = ['running', 'starting', 'queued'].includes(a.status);
  $('act-stop').disabled = !live;
  $('act-send').disabled = !f.has_session;
  $('send-text').disabled = !f.has_session;
  $('act-resume').disabled = live;
  $('act-merge').disabled = live || !a.branch;
  $('merge-how').disabled = live || !a.branch;
  $('act-remove').disabled = live;
  $('resume-text').disabled = live;
  const steerWhy = f.steer_unsupported || (!f.has_session ? 'no live stream session' : '');
  $('act-steer').disabled = !!steerWhy;
  $('steer-text').disabled = !!steerWhy;
  $('steer-why').textContent = steerWhy ? `Steer is unavailable: ${steerWhy}` : '';
}

async function act(what, fn) {
  const msg = $('action-msg');
  msg.className = 'action-msg';
  msg.textContent = `${what}…`;
  try {
    await fn();
    if (msg.textContent === `${what}…`) msg.textContent = `${what}: done`;
  } catch (e) {
    msg.className = 'action-msg error';
    msg.textContent = `${what} failed: ${e.message}`;
  }
}

function showTab(which) {
  const diff = which === 'diff';
  $('tab-timeline').setAttribute('aria-selected', String(!diff));
  $('tab-diff').setAttribute('aria-selected', String(diff));
  $('timeline-pane').hidden = diff;
  $('diff-pane').hidden = !diff;
}

async function loadDiff() {
  const id = state.selected;
  const head = $('diff-head');
  head.textContent = 'loading…';
  try {
    const d = await api('GET', `/v1/agents/${encodeURIComponent(id)}/diff`);
    if (state.selected !== id) return;
    head.textContent = `${d.branch} against ${d.base}: ${d.files.length} file(s) changed`;
    $('diff-stat').textContent = d.stat;
    $('diff-files').replaceChildren(...d.files.map((f) => {
      const pre = el('pre');
      for (const line of f.patch.split('\n')) {
        const cls = line.startsWith('+') && !line.startsWith('+++') ? 'add'
          : line.startsWith('-') && !line.startsWith('---') ? 'del' : null;
        pre.append(cls ? el('span', { class: cls, text: `${line}\n` }) : `${line}\n`);
      }
      return el('details', { open: '' }, el('summary', { text: `${f.path}  +${f.added} −${f.removed}` }), pre);
    }));
  } catch (e) {
    head.textContent = e.message;
  }
}

// ---- wiring ------------------------------------------------------------------------------

function wire() {
  const tree = $('forest');
  tree.addEventListener('click', (e) => {
    const n = e.target.closest('.node');
    if (n) { select(n.dataset.id); n.focus(); }
  });
  tree.addEventListener('keydown', (e) => {
    const nodes = [...tree.querySelectorAll('.node')];
    const i = nodes.indexOf(document.activeElement);
    if (i < 0) return;
    let j = null;
    if (e.key === 'ArrowDown') j = Math.min(nodes.length - 1, i + 1);
    else if (e.key === 'ArrowUp') j = Math.max(0, i - 1);
    else if (e.key === 'Home') j = 0;
    else if (e.key === 'End') j = nodes.length - 1;
    else if (e.key === 'Enter' || e.key === ' ') { select(nodes[i].dataset.id); e.preventDefault(); return; }
    if (j != null) {
      e.preventDefault();
      nodes[i].tabIndex = -1;
      nodes[j].tabIndex = 0;
      nodes[j].focus();
    }
  });
  $('act-stop').addEventListener('click', () => act('stop', () => api('POST', `/v1/agents/${encodeURIComponent(state.selected)}/stop`)));
  const form = (id, what, path, extra) => $(id).addEventListener('submit', (e) => {
    e.preventDefault();
    const input = e.target.querySelector('input');
    const prompt = input.value;
    act(what, async () => {
      await api('POST', `/v1/agents/${encodeURIComponent(state.selected)}/${path}`, { prompt, ...extra });
      input.value = '';
    });
  });
  form('form-send', 'send', 'send', { wait: false });
  form('form-steer', 'steer', 'steer', {});
  form('form-resume', 'resume', 'resume', {});
  $('form-merge').addEventListener('submit', (e) => {
    e.preventDefault();
    const id = state.selected;
    act('merge', async () => {
      const m = await api('POST', `/v1/agents/${encodeURIComponent(id)}/merge`, { how: $('merge-how').value });
      $('action-msg').textContent = `merged ${m.branch} into ${m.into}: ${m.head.slice(0, 12)}`;
    }).then(() => { if (state.selected === id && !$('diff-pane').hidden) loadDiff(); });
  });
  $('act-remove').addEventListener('click', () => {
    const id = state.selected;
    const force = $('remove-force').checked ? '?force=true' : '';
    act('remove', () => api('DELETE', `/v1/agents/${encodeURIComponent(id)}${force}`));
  });
  $('tab-timeline').addEventListener('click', () => showTab('timeline'));
  $('tab-diff').addEventListener('click', () => { showTab('diff'); loadDiff(); });
  const dlg = $('spawn-dialog');
  $('spawn-open').addEventListener('click', () => { $('spawn-msg').textContent = ''; dlg.showModal(); $('spawn-task').focus(); });
  $('spawn-cancel').addEventListener('click', () => dlg.close());
  $('form-spawn').addEventListener('submit', async (e) => {
    e.preventDefault();
    const v = (id) => $(id).value.trim() || undefined;
    const body = { task: v('spawn-task'), prompt: v('spawn-prompt'), runtime: v('spawn-runtime'), tier: v('spawn-tier'), mode: v('spawn-mode') };
    try {
      const a = await api('POST', '/v1/agents', body);
      dlg.close();
      select(a.id);
    } catch (err) {
      $('spawn-msg').textContent = err.message;
    }
  });
}

document.addEventListener('DOMContentLoaded', boot);
