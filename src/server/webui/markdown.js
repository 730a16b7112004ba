// A small Markdown renderer for model output, which is untrusted: it builds DOM nodes with
// createElement / createTextNode only (no innerHTML), so no text it is given can become
// markup, and links are kept only for http(s) and mailto URLs.
//
// Blocks: paragraphs (single newlines are line breaks), ATX headings, fenced code (an
// unclosed fence runs to the end, as while an answer streams), indented lists (ordered and
// not, nested), block quotes, GFM tables, rules. Inline: code spans, **strong**, *em* /
// _em_, ~~strike~~, [links](url), <autolinks>, bare URLs, backslash escapes.
'use strict';

window.TesseraMarkdown = (() => {
  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
  const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const ITEM = /^( *)([-*+]|\d{1,9}[.)])(?:\s+(.*)|$)/;
  const TABLE_SEP = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function safeUrl(url) {
    try {
      const u = new URL(url, window.location.href);
      if (u.protocol === 'http:' || u.protocol === 'https:' || u.protocol === 'mailto:') {
        return u.href;
      }
    } catch (_) { /* not a URL */ }
    return null;
  }

  function link(href, parent, label) {
    const url = safeUrl(href);
    if (url === null) {
      parent.appendChild(document.createTextNode(label === undefined ? href : label));
      return null;
    }
    const a = el('a');
    a.href = url;
    a.target = '_blank';
    a.rel = 'noopener noreferrer nofollow';
    if (label === undefined) a.textContent = href;
    parent.appendChild(a);
    return a;
  }

  // ---- inline ----
  // Each kind: a global regex and what to do with a match. The earliest match wins (ties:
  // the order here); matches found past the current position are kept for later.
  const INLINE = [
    { re: /\\([!-/:-@[-`{-~])/g, emit: (m, p) => p.appendChild(document.createTextNode(m[1])) },
    { re: /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g,
      emit: (m, p) => p.appendChild(el('code', null, m[2].replace(/^ (.*) $/s, '$1'))) },
    { re: /\[([^\]\n]+)\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"\n]*")?\s*\)/g,
      emit: (m, p) => { const a = link(m[2], p, m[1]); if (a) inline(m[1], a); } },
    { re: /<((?:https?:\/\/|mailto:)[^\s<>]+)>/g, emit: (m, p) => link(m[1], p) },
    { re: /\bhttps?:\/\/[^\s<]*[^\s<.,:;"')\]!?*_~]/g, emit: (m, p) => link(m[0], p) },
    { re: /\*\*(?=\S)([\s\S]*?\S)\*\*/g, emit: (m, p) => inline(m[1], p.appendChild(el('strong'))) },
    { re: /__(?=\S)([\s\S]*?\S)__(?!\w)/g, emit: (m, p) => inline(m[1], p.appendChild(el('strong'))) },
    { re: /~~(?=\S)([\s\S]*?\S)~~/g, emit: (m, p) => inline(m[1], p.appendChild(el('del'))) },
    { re: /\*(?=[^\s*])([\s\S]*?[^\s*])\*(?!\*)/g, emit: (m, p) => inline(m[1], p.appendChild(el('em'))) },
    { re: /\b_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/g, emit: (m, p) => inline(m[1], p.appendChild(el('em'))) },
  ];

  function text(s, parent) {
    // Line breaks inside a paragraph are kept as <br>.
    const lines = s.split('\n');
    lines.forEach((line, i) => {
      if (i > 0) parent.appendChild(el('br'));
      if (line) parent.appendChild(document.createTextNode(line));
    });
  }

  function inline(s, parent) {
    const next = INLINE.map(() => null);  // cached match of each kind at or after pos
    let pos = 0;
    while (pos < s.length) {
      let best = -1;
      for (let k = 0; k < INLINE.length; k++) {
        let m = next[k];
        if (m === undefined) continue;  // no match left of this kind
        if (m === null || m.index < pos) {
          const re = INLINE[k].re;
          re.lastIndex = pos;
          m = re.exec(s);
          next[k] = m === null ? undefined : m;
          if (m === null) continue;
        }
        if (best < 0 || m.index < next[best].index) best = k;
      }
      if (best < 0) break;
      const m = next[best];
      if (m.index > pos) text(s.slice(pos, m.index), parent);
      INLINE[best].emit(m, parent);
      pos = m.index + m[0].length;
    }
    if (pos < s.length) text(s.slice(pos), parent);
  }

  // ---- blocks ----
  function codeBlock(lang, code, parent) {
    const wrap = el('div', 'code-block');
    const head = el('div', 'code-head');
    head.appendChild(el('span', 'code-lang', lang || 'text'));
    const copy = el('button', 'copy', 'Copy');
    copy.type = 'button';
    copy.addEventListener('click', () => {
      if (!navigator.clipboard) return;
      navigator.clipboard.writeText(code).then(() => {
        copy.textContent = 'Copied';
        setTimeout(() => { copy.textContent = 'Copy'; }, 1200);
      }, () => {});
    });
    head.appendChild(copy);
    wrap.appendChild(head);
    const pre = el('pre');
    const c = el('code', lang ? 'language-' + lang.replace(/[^\w+#-]/g, '') : null, code);
    pre.appendChild(c);
    wrap.appendChild(pre);
    parent.appendChild(wrap);
  }

  function splitRow(line) {
    let s = line.trim();
    if (s.startsWith('|')) s = s.slice(1);
    if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
    return s.split(/(?<!\\)\|/).map(c => c.trim().replace(/\\\|/g, '|'));
  }

  function table(lines, parent) {
    const head = splitRow(lines[0]);
    const align = splitRow(lines[1]).map(c =>
      c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : '');
    const wrap = el('div', 'table-wrap');
    const t = el('table');
    const thead = el('thead');
    const tr = el('tr');
    head.forEach((h, i) => {
      const th = el('th', align[i] ? 'align-' + align[i] : null);
      inline(h, th);
      tr.appendChild(th);
    });
    thead.appendChild(tr);
    t.appendChild(thead);
    const tbody = el('tbody');
    for (const line of lines.slice(2)) {
      const row = el('tr');
      const cells = splitRow(line);
      head.forEach((_, i) => {
        const td = el('td', align[i] ? 'align-' + align[i] : null);
        inline(cells[i] || '', td);
        row.appendChild(td);
      });
      tbody.appendChild(row);
    }
    t.appendChild(tbody);
    wrap.appendChild(t);
    parent.appendChild(wrap);
  }

  function isBlockStart(line, nextLine) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
      ITEM.test(line) ||
      (line.includes('|') && nextLine !== undefined && TABLE_SEP.test(nextLine) &&
       nextLine.includes('-'));
  }

  function list(lines, start, parent) {
    const first = ITEM.exec(lines[start]);
    const indent = first[1].length;
    const ordered = /\d/.test(first[2]);
    const node = el(ordered ? 'ol' : 'ul');
    if (ordered) {
      const n = parseInt(first[2], 10);
      if (n !== 1) node.start = n;
    }
    let i = start;
    let loose = false;
    const items = [];
    while (i < lines.length) {
      const m = ITEM.exec(lines[i]);
      if (!m || m[1].length !== indent || /\d/.test(m[2]) !== ordered) break;
      const content = [m[3] || ''];
      const contIndent = indent + m[2].length + 1;
      i++;
      // The item goes on over indented lines, and over blank lines followed by them.
      while (i < lines.length) {
        const line = lines[i];
        if (line.trim() === '') {
          let j = i + 1;
          while (j < lines.length && lines[j].trim() === '') j++;
          if (j < lines.length && lines[j].search(/\S/) >= contIndent) {
            for (; i < j; i++) content.push('');
            loose = true;
            continue;
          }
          break;
        }
        const lead = line.search(/\S/);
        if (lead >= contIndent) {
          content.push(line.slice(contIndent));  // the item's own blocks
        } else if (ITEM.test(line)) {
          if (lead <= indent) break;  // the next item, or a list around this one
          content.push(line.slice(lead));  // a nested list, indented less than the text
        } else if (!isBlockStart(line, lines[i + 1])) {
          content.push(line.trim());  // a lazy continuation of the item's paragraph
        } else {
          break;
        }
        i++;
      }
      items.push(content);
      // A blank line between items makes the list loose (paragraphs in items).
      let j = i;
      while (j < lines.length && lines[j].trim() === '') j++;
      const nm = j < lines.length ? ITEM.exec(lines[j]) : null;
      if (j > i && nm && nm[1].length === indent && /\d/.test(nm[2]) === ordered) {
        loose = true;
        i = j;
      }
    }
    for (const content of items) {
      const li = el('li');
      const blocks = document.createDocumentFragment();
      renderBlocks(content, blocks);
      // Tight lists: the paragraphs of an item are shown without their margins.
      if (!loose) {
        for (const p of Array.from(blocks.childNodes)) {
          if (p.nodeName === 'P') {
            while (p.firstChild) blocks.insertBefore(p.firstChild, p);
            blocks.removeChild(p);
          }
        }
      }
      li.appendChild(blocks);
      node.appendChild(li);
    }
    parent.appendChild(node);
    return i;
  }

  function renderBlocks(lines, parent) {
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      if (line.trim() === '') { i++; continue; }
      let m;
      if ((m = FENCE.exec(line))) {
        const fence = m[1];
        const body = [];
        i++;
        while (i < lines.length) {
          const close = lines[i].trim();
          if (close.startsWith(fence[0].repeat(fence.length)) &&
              /^[`~]+$/.test(close) && close[0] === fence[0]) {
            i++;
            break;
          }
          body.push(lines[i]);
          i++;
        }
        codeBlock(m[2], body.join('\n'), parent);
        continue;
      }
      if ((m = HEADING.exec(line))) {
        const h = el('h' + Math.min(6, m[1].length + 2));  // h3..h6: inside a message
        inline(m[2] || '', h);
        parent.appendChild(h);
        i++;
        continue;
      }
      if (RULE.test(line)) {
        parent.appendChild(el('hr'));
        i++;
        continue;
      }
      if (QUOTE.test(line)) {
        const body = [];
        while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
          body.push(m[1]);
          i++;
        }
        const q = el('blockquote');
        renderBlocks(body, q);
        parent.appendChild(q);
        continue;
      }
      if (ITEM.test(line)) {
        i = list(lines, i, parent);
        continue;
      }
      if (line.includes('|') && i + 1 < lines.length && TABLE_SEP.test(lines[i + 1]) &&
          lines[i + 1].includes('-')) {
        const rows = [lines[i], lines[i + 1]];
        i += 2;
        while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') {
          rows.push(lines[i]);
          i++;
        }
        table(rows, parent);
        continue;
      }
      const para = [line.trim()];
      i++;
      while (i < lines.length && lines[i].trim() !== '' && !isBlockStart(lines[i], lines[i + 1])) {
        para.push(lines[i].trim());
        i++;
      }
      const p = el('p');
      inline(para.join('\n'), p);
      parent.appendChild(p);
    }
  }

  // A DocumentFragment for `source`.
  function render(source) {
    const frag = document.createDocumentFragment();
    renderBlocks(String(source).replace(/\r\n?/g, '\n').split('\n'), frag);
    return frag;
  }

  // el(tag, class, text): an element, its text set as text; shared with app.js.
  return { render, el };
})();
