// The chat page: one conversation kept in localStorage, answers streamed from
// /v1/chat/completions (Server-Sent Events read through fetch + ReadableStream), the stop
// button aborting that fetch (the server sees the client go and frees the request), and an
// API key asked for when the server answers 401. Model text is untrusted: it reaches the
// page only as text nodes (TesseraMarkdown builds elements, never parses HTML).
'use strict';

(() => {
  const STORE = 'tessera.chat.v1';
  const KEY = 'tessera.apiKey';
  const $ = (id) => document.getElementById(id);
  const ui = {
    app: $('app'), messages: $('messages'), empty: $('empty'), input: $('input'),
    composer: $('composer'), send: $('send'), stop: $('stop'), status: $('status'),
    model: $('model-name'), settings: $('settings'), toggle: $('toggle-settings'),
    newChat: $('new-chat'), system: $('system'), temperature: $('temperature'),
    topP: $('top_p'), maxTokens: $('max_tokens'), seed: $('seed'), forgetKey: $('forget-key'),
    keyDialog: $('key-dialog'), keyForm: $('key-form'), keyInput: $('key-input'),
    keyRemember: $('key-remember'), keyCancel: $('key-cancel'), keyReason: $('key-reason'),
  };

  // ---- state: {messages: [{role, content, stats?, stopped?, error?}], settings} ----
  const DEFAULTS = { system: '', temperature: '0.7', top_p: '0.95', max_tokens: '512', seed: '' };
  let state = { messages: [], settings: { ...DEFAULTS } };
  try {
    const saved = JSON.parse(localStorage.getItem(STORE) || 'null');
    if (saved && Array.isArray(saved.messages)) {
      state.messages = saved.messages.filter(
        (m) => m && (m.role === 'user' || m.role === 'assistant') && typeof m.content === 'string');
      state.settings = { ...DEFAULTS, ...(saved.settings || {}) };
    }
  } catch (_) { /* a broken entry: start afresh */ }

  function save() {
    try {
      localStorage.setItem(STORE, JSON.stringify(state));
    } catch (_) { /* storage full or disabled: the page still works */ }
  }

  function apiKey() {
    return sessionStorage.getItem(KEY) || localStorage.getItem(KEY) || '';
  }

  function headers() {
    const h = { 'Content-Type': 'application/json' };
    const k = apiKey();
    if (k) h.Authorization = 'Bearer ' + k;
    return h;
  }

  // Asks for a key; resolves to true when one was given.
  function askKey(reason) {
    return new Promise((resolve) => {
      ui.keyReason.textContent = reason;
      ui.keyInput.value = '';
      const done = (ok) => {
        ui.keyForm.onsubmit = null;
        ui.keyCancel.onclick = null;
        ui.keyDialog.oncancel = null;
        if (ui.keyDialog.open) ui.keyDialog.close();
        resolve(ok);
      };
      ui.keyForm.onsubmit = (e) => {
        e.preventDefault();
        const k = ui.keyInput.value.trim();
        if (!k) return;
        sessionStorage.removeItem(KEY);
        localStorage.removeItem(KEY);
        (ui.keyRemember.checked ? localStorage : sessionStorage).setItem(KEY, k);
        ui.forgetKey.hidden = false;
        done(true);
      };
      ui.keyCancel.onclick = () => done(false);
      ui.keyDialog.oncancel = () => done(false);
      ui.keyDialog.showModal();
      ui.keyInput.focus();
    });
  }

  // fetch that asks for an API key on 401 and tries again with it.
  async function apiFetch(path, init) {
    for (;;) {
      const res = await fetch(path, { ...init, headers: headers() });
      if (res.status !== 401) return res;
      const reason = apiKey() ? 'The server refused this API key.' :
        'This server requires an API key.';
      if (!(await askKey(reason))) return res;
    }
  }

  // ---- rendering ----
  const { el } = window.TesseraMarkdown;

  function statsText(m) {
    const parts = [];
    if (m.stats) {
      parts.push(m.stats.tokens + (m.stats.tokens === 1 ? ' token' : ' tokens'));
      if (m.stats.tps > 0) parts.push(m.stats.tps.toFixed(1) + ' tok/s');
      if (m.stats.finish) parts.push(m.stats.finish);
    }
    if (m.stopped) parts.push('stopped');
    return parts.join(' · ');
  }

  function fillMessage(node, m) {
    const body = node.querySelector('.content');
    body.replaceChildren();
    if (m.role === 'assistant') {
      body.appendChild(window.TesseraMarkdown.render(m.content));
      if (m.error) body.appendChild(el('p', 'error', m.error));
    } else {
      body.textContent = m.content;
    }
    node.querySelector('.stats').textContent = m.role === 'assistant' ? statsText(m) : '';
  }

  function messageNode(m) {
    const node = el('div', 'msg ' + m.role);
    node.appendChild(el('div', 'who', m.role === 'user' ? 'You' : 'Assistant'));
    node.appendChild(el('div', 'content'));
    node.appendChild(el('div', 'stats small muted'));
    fillMessage(node, m);
    return node;
  }

  function renderAll() {
    ui.messages.replaceChildren();
    if (state.messages.length === 0) ui.messages.appendChild(ui.empty);
    for (const m of state.messages) ui.messages.appendChild(messageNode(m));
    scrollDown(true);
  }

  function nearBottom() {
    const c = ui.messages;
    return c.scrollHeight - c.scrollTop - c.clientHeight < 80;
  }

  function scrollDown(force) {
    if (force || nearBottom()) ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  // ---- settings ----
  const fields = [
    ['system', ui.system], ['temperature', ui.temperature], ['top_p', ui.topP],
    ['max_tokens', ui.maxTokens], ['seed', ui.seed],
  ];
  for (const [name, input] of fields) {
    input.value = state.settings[name];
    input.addEventListener('input', () => {
      state.settings[name] = input.value;
      save();
    });
  }

  // The request's sampling fields; empty or invalid inputs are left to the server's default.
  function samplingParams() {
    const p = {};
    const num = (v) => (v.trim() === '' ? NaN : Number(v));
    const t = num(ui.temperature.value);
    if (Number.isFinite(t)) p.temperature = t;
    const tp = num(ui.topP.value);
    if (Number.isFinite(tp)) p.top_p = tp;
    const mt = num(ui.maxTokens.value);
    if (Number.isInteger(mt) && mt > 0) p.max_tokens = mt;
    const seed = num(ui.seed.value);
    if (Number.isInteger(seed)) p.seed = seed;
    return p;
  }

  function setSettingsOpen(open) {
    ui.app.classList.toggle('settings-open', open);
    ui.toggle.setAttribute('aria-expanded', String(open));
  }
  ui.toggle.addEventListener('click', () =>
    setSettingsOpen(!ui.app.classList.contains('settings-open')));
  // Open beside the conversation on wide screens, closed (an overlay) on narrow ones.
  const wide = window.matchMedia('(min-width: 900px)');
  setSettingsOpen(wide.matches);
  wide.addEventListener('change', () => setSettingsOpen(wide.matches));

  ui.forgetKey.hidden = !apiKey();
  ui.forgetKey.addEventListener('click', () => {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
    ui.forgetKey.hidden = true;
  });

  // ---- streaming ----
  let controller = null;  // the AbortController of the answer streaming now

  function setBusy(busy) {
    ui.send.hidden = busy;
    ui.stop.hidden = !busy;
    ui.input.disabled = false;
  }

  // Yields the JSON payload of each `data:` event of an SSE body until [DONE].
  async function* sseEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, cut).replace(/\r$/, '');
        buf = buf.slice(cut + 1);
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') return;
        yield JSON.parse(data);
      }
    }
  }

  async function errorText(res) {
    try {
      const j = await res.json();
      if (j && j.error && j.error.message) return j.error.message;
    } catch (_) { /* not JSON */ }
    return 'HTTP ' + res.status;
  }

  async function send(text) {
    const history = state.messages.map((m) => ({ role: m.role, content: m.content }));
    history.push({ role: 'user', content: text });
    const system = ui.system.value.trim();
    const body = {
      messages: system ? [{ role: 'system', content: system }, ...history] : history,
      stream: true,
      stream_options: { include_usage: true },
      ...samplingParams(),
    };
    const user = { role: 'user', content: text };
    const reply = { role: 'assistant', content: '' };
    state.messages.push(user, reply);
    save();
    renderAll();
    const node = ui.messages.lastElementChild;
    node.classList.add('streaming');

    controller = new AbortController();
    setBusy(true);
    const t0 = performance.now();
    let tFirst = 0;
    let chunks = 0;
    let usageTokens = 0;
    let finish = '';
    let pending = false;
    const redraw = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        fillMessage(node, reply);
        scrollDown(false);
      });
    };
    const rate = () => {
      const n = usageTokens || chunks;
      const secs = (performance.now() - (tFirst || t0)) / 1000;
      // Tokens after the first over the time since it: the decode rate.
      return n > 1 && secs > 0 ? (n - 1) / secs : 0;
    };
    try {
      const res = await apiFetch('/v1/chat/completions', {
        method: 'POST', body: JSON.stringify(body), signal: controller.signal,
      });
      if (!res.ok) {
        reply.error = await errorText(res);
      } else {
        for await (const ev of sseEvents(res.body)) {
          if (ev.usage) usageTokens = ev.usage.completion_tokens || 0;
          const choice = ev.choices && ev.choices[0];
          if (!choice) continue;
          const delta = choice.delta || {};
          if (typeof delta.content === 'string' && delta.content !== '') {
            if (!tFirst) tFirst = performance.now();
            chunks++;
            reply.content += delta.content;
            ui.status.textContent = chunks + ' tokens · ' + rate().toFixed(1) + ' tok/s';
            redraw();
          }
          if (choice.finish_reason) finish = choice.finish_reason;
        }
      }
    } catch (e) {
      if (e.name === 'AbortError') reply.stopped = true;
      else reply.error = String(e.message || e);
    }
    const tokens = usageTokens || chunks;
    if (tokens > 0) reply.stats = { tokens, tps: rate(), finish };
    controller = null;
    setBusy(false);
    node.classList.remove('streaming');
    ui.status.textContent = '';  // the figures stay under the answer
    fillMessage(node, reply);
    scrollDown(false);
    save();
  }

  ui.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    const text = ui.input.value.trim();
    if (!text || controller) return;
    ui.input.value = '';
    autosize();
    send(text);
  });
  ui.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ui.composer.requestSubmit();
    }
  });
  function autosize() {
    const border = ui.input.offsetHeight - ui.input.clientHeight;
    ui.input.style.height = 'auto';
    const h = ui.input.scrollHeight + border;
    ui.input.style.height = Math.min(h, 200) + 'px';
    ui.input.style.overflowY = h > 200 ? 'auto' : 'hidden';
  }
  ui.input.addEventListener('input', autosize);
  ui.stop.addEventListener('click', () => { if (controller) controller.abort(); });
  ui.newChat.addEventListener('click', () => {
    if (controller) controller.abort();
    state.messages = [];
    save();
    ui.status.textContent = '';
    renderAll();
    ui.input.focus();
  });

  // ---- start ----
  renderAll();
  setBusy(false);
  autosize();
  fetch('/v1/models', { headers: headers() })
    .then((r) => (r.ok ? r.json() : null))
    .then((j) => {
      if (j && j.data && j.data[0]) ui.model.textContent = j.data[0].id;
    })
    .catch(() => {});
  ui.input.focus();
})();
