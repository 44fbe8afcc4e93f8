// The dashboard's first load: where the kept history of a channel begins,
// so that the page can subscribe with since and show the recent past
// before live events, instead of an empty feed.
//
// The hub replays the events after since only when history still reaches
// back to it: since may be at most the offset just before the oldest event
// kept, else the answer is recovered: false and nothing is replayed. The
// oldest kept offset is not told, so a second connection tries offsets
// from the channel's start towards its newest event and keeps the first
// the hub recovers from.
// sinceLadder lists the offsets to try as since, earliest first, for a
// channel whose newest event is at latest ("n:epoch" or "n:epoch:tag"),
// as numbers, with the epoch: none for an empty channel (n is 0) or one
// that does not parse. The steps are coarse; the search narrows the step
// where the hub began to recover.
export function sinceLadder(latest) {
  const [n, epoch] = String(latest ?? '').split(':');
  const top = Number(n);
  if (!epoch || !Number.isSafeInteger(top) || top <= 0) return { epoch: '', at: [] };
  const at = [0];
  for (const back of [5000, 2000, 1000, 500, 200, 100, 50, 20, 10, 1]) {
    if (top - back > at[at.length - 1]) at.push(top - back);
  }
  return { epoch, at };
}

// answer resolves to the next subscribed frame of sub (or rejects with its
// error), and rejects after ms.
function answer(sub, ms) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const done = (fn, v) => {
      clearTimeout(timer);
      offs.forEach((off) => off());
      fn(v);
    };
    const timer = setTimeout(() => done(reject, new Error(`no answer for ${sub.channel} within ${ms} ms`)), ms);
    offs.push(sub.on('subscribed', (info) => done(resolve, info)));
    offs.push(sub.on('error', (e) => done(reject, e)));
  });
}

// keptSince resolves to the offset to subscribe to channel with so that
// every event history keeps is replayed, or to '' when it keeps none (an
// empty channel, or one whose events all expired). It rejects when the
// hub could not be asked within timeout ms a step (then subscribe without
// since). The probe runs on a connection of its own: hub, a Hub of the
// client not yet connected, which it closes before it resolves.
export async function keptSince(hub, channel = 'app', timeout = 10000) {
  try {
    let sub = hub.subscribe(channel);
    const first = answer(sub, timeout);
    hub.connect();
    const { offset } = await first;
    sub.unsubscribe();
    const { epoch, at } = sinceLadder(offset);
    // recovers says whether the hub replays from since n: whether n is at
    // or after the offset just before the oldest event kept. Each yes
    // replays the kept events after n to this connection, which drops them.
    const recovers = async (n) => {
      sub = hub.subscribe(channel, { since: `${n}:${epoch}` });
      const { recovered } = await answer(sub, timeout);
      sub.unsubscribe();
      return recovered === true;
    };
    let i = 0;
    while (i < at.length && !(await recovers(at[i]))) i++;
    if (i === at.length) return ''; // not even the newest event is kept
    // The oldest kept lies between the step that failed and the one that
    // did not: halve it.
    let no = i > 0 ? at[i - 1] : -1;
    let yes = at[i];
    while (yes - no > 1) {
      const mid = Math.floor((no + yes) / 2);
      if (await recovers(mid)) yes = mid;
      else no = mid;
    }
    return `${yes}:${epoch}`;
  } finally {
    hub.close();
  }
}
