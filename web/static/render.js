// Pure functions that turn imhub events into HTML. Every value from an
// event passes through esc() or safeURL() before it reaches the page.

export const TYPES = {
  'group.message.sent': 'group message',
  'group.message.recalled': 'group recall',
  'c2c.message.sent': 'one-to-one message',
  'c2c.message.recalled': 'one-to-one recall',
};

export function esc(v) {
  return String(v ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// safeURL keeps http(s) URLs only: a message body must not smuggle a
// javascript: link into the page.
export function safeURL(u) {
  try {
    const url = new URL(String(u));
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : '';
  } catch {
    return '';
  }
}

// clock is the time of day, with the date in front when it is not today.
export function clock(ms, now = Date.now()) {
  if (!ms) return '';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  const time = [d.getHours(), d.getMinutes(), d.getSeconds()].map(pad).join(':');
  return new Date(now).toDateString() === d.toDateString() ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

function size(n) {
  if (!Number.isFinite(n)) return '';
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + ' MiB';
  if (n >= 1 << 10) return (n / (1 << 10)).toFixed(1) + ' KiB';
  return n + ' B';
}

// element renders one TIM message element.
export function element(el) {
  const c = (el && el.MsgContent) || {};
  switch (el && el.MsgType) {
    case 'TIMTextElem':
      return `<p class="el text">${esc(c.Text)}</p>`;
    case 'TIMFaceElem':
      return `<p class="el face" title="face ${esc(c.Index)}">☺ face #${esc(c.Index)}${c.Data ? ' · ' + esc(c.Data) : ''}</p>`;
    case 'TIMLocationElem':
      return `<p class="el location">📍 ${esc(c.Desc)} <span class="dim">(${esc(c.Latitude)}, ${esc(c.Longitude)})</span></p>`;
    case 'TIMCustomElem':
      return `<p class="el custom">custom: <code>${esc(c.Data)}</code>${c.Desc ? ' · ' + esc(c.Desc) : ''}</p>`;
    case 'TIMImageElem': {
      const infos = Array.isArray(c.ImageInfoArray) ? c.ImageInfoArray : [];
      const thumb = infos.find((i) => i && i.Type === 3) || infos.slice().sort((a, b) => (a.Size || 0) - (b.Size || 0))[0];
      const src = thumb ? safeURL(thumb.URL) : '';
      const alt = `image ${esc(c.UUID)}`;
      return src
        ? `<p class="el image"><img src="${esc(src)}" alt="${alt}" loading="lazy" referrerpolicy="no-referrer" width="96" height="96"></p>`
        : `<p class="el image">🖼 ${alt}</p>`;
    }
    case 'TIMSoundElem':
      return `<p class="el sound">🔊 sound, ${esc(c.Second)} s${linkTo(c.Url, 'listen')}</p>`;
    case 'TIMFileElem':
      return `<p class="el file">📄 ${esc(c.FileName)} <span class="dim">${esc(size(c.FileSize))}</span>${linkTo(c.Url, 'download')}</p>`;
    case 'TIMVideoFileElem':
      return `<p class="el video">🎬 video, ${esc(c.VideoSecond)} s${linkTo(c.VideoUrl, 'watch')}</p>`;
    case 'TIMRelayElem': {
      const lines = Array.isArray(c.AbstractList) ? c.AbstractList.slice(0, 3) : [];
      return `<div class="el relay"><p>⤷ ${esc(c.Title || 'merged messages')} <span class="dim">(${esc(c.MsgNum)} messages)</span></p>` +
        lines.map((l) => `<p class="dim">${esc(l)}</p>`).join('') + '</div>';
    }
    default:
      return `<p class="el unknown">${esc(el && el.MsgType ? el.MsgType : 'element')}</p>`;
  }
}

function linkTo(u, label) {
  const href = safeURL(u);
  return href ? ` <a href="${esc(href)}" target="_blank" rel="noopener noreferrer">${label}</a>` : '';
}

// where says the conversation an event belongs to.
export function where(ev) {
  if (ev.group_id) {
    return `group ${esc(ev.group_id)}${ev.topic_id ? ` · topic ${esc(ev.topic_id)}` : ''}`;
  }
  return `${esc(ev.from)} → ${esc(ev.to)}`;
}

// card renders one feed item: the event, and how it was recalled if it was.
export function card(item) {
  const ev = item.ev;
  const kind = ev.type.replaceAll('.', '-');
  const cls = ['ev', kind, item.recalled ? 'recalled' : ''].join(' ').trim();
  let body = '';
  if (Array.isArray(ev.body)) body = ev.body.map(element).join('');
  if (ev.type === 'group.message.recalled') {
    const seqs = (ev.messages || []).map((m) => '#' + m.seq).join(', ');
    body = `<p class="el note">${esc(ev.operator || 'someone')} recalled ${esc(seqs)}</p>`;
  }
  if (ev.type === 'c2c.message.recalled') {
    body = `<p class="el note">${esc(ev.from)} withdrew a message to ${esc(ev.to)}${ev.unread !== undefined ? ` · <span class="unread">unread ${esc(ev.unread)}</span>` : ''}</p>`;
  }
  if (ev.send_result) {
    body += `<p class="el failed">not delivered (${esc(ev.send_result)}): ${esc(ev.error_info)}</p>`;
  }
  const who = ev.type.endsWith('.recalled') ? ev.operator || ev.from : ev.from;
  const recall = item.recalled
    ? `<p class="recall-note">recalled by ${esc(item.recalled.by || 'unknown')} at ${esc(clock(item.recalled.at))}</p>`
    : '';
  return `<li class="${cls}" data-key="${esc(item.key)}">` +
    `<div class="meta"><time datetime="${esc(new Date(ev.time || 0).toISOString())}">${esc(clock(ev.time))}</time>` +
    `<span class="badge">${esc(TYPES[ev.type] || ev.type)}</span>` +
    `<span class="where">${where(ev)}</span>` +
    (who ? `<span class="who">${esc(who)}</span>` : '') +
    (ev.platform ? `<span class="platform">${esc(ev.platform)}</span>` : '') +
    `<button type="button" class="inspect" aria-label="Show the raw JSON of this event">{ }</button></div>` +
    `<div class="body">${body}</div>${recall}</li>`;
}

// matches applies the filter form to an event.
export function matches(ev, f) {
  if (f.type && ev.type !== f.type) return false;
  if (f.group && ev.group_id !== f.group) return false;
  if (f.user && ![ev.from, ev.to, ev.operator].includes(f.user)) return false;
  if (f.text) {
    const hay = JSON.stringify([ev.body, ev.from, ev.to, ev.group_id, ev.topic_id, ev.operator]).toLowerCase();
    if (!hay.includes(f.text.toLowerCase())) return false;
  }
  return true;
}

// messageKeys are the identities under which a sent message can be found
// by the recall that names it.
export function messageKeys(ev) {
  const ms = ev.messages || [];
  if (ev.group_id) return ms.map((m) => `g|${ev.group_id}|${ev.topic_id || ''}|${m.seq}`);
  return ms.filter((m) => m.key).map((m) => `c|${m.key}`);
}

// newer reports whether offset a ("n:epoch") comes after b on one channel.
export function newer(a, b) {
  if (!b) return true;
  const [na, ea] = a.split(':');
  const [nb, eb] = b.split(':');
  return ea !== eb || Number(na) > Number(nb);
}
