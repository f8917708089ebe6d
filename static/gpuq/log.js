// The job page's log viewer. It opens at the log's end (one window read, whatever the log's size),
// follows what is written after it, loads earlier parts on scroll up or "Load earlier", searches on the
// server (a bounded piece a call) and jumps to a match, and keeps at most MAX_CHARS in the page, dropping
// the far end. All reads are GET /api/v1/jobs/{id}/log (?bytes, ?before, ?after) and …/log/search; a 503
// (the database away for a moment) is waited out for its Retry-After.
(function () {
  "use strict";
  const pre = document.getElementById("log");
  if (!pre) return;
  const WINDOW = 65536;
  const MAX_CHARS = 2000000;
  const SEARCH_CALLS = 8; // per click: each scans at most 16 MiB
  const $ = (id) => document.getElementById(id);
  const earlierButton = $("log-earlier"), latestButton = $("log-latest"), status = $("log-status");
  const results = $("log-results"), matchList = $("log-matches"), moreButton = $("log-more");
  const base = pre.dataset.log;
  let pieces = []; // [{start, end, node}] in order; the page shows bytes pieces[0].start to last.end
  let keptFrom = 0, size = 0, following = false, busy = false, generation = 0;
  let search = null; // {q, next}

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  async function get(url) {
    for (;;) {
      let response;
      try {
        response = await fetch(url, { credentials: "same-origin" });
      } catch (error) {
        await sleep(2000);
        continue;
      }
      if (response.status === 503) {
        await sleep((Number(response.headers.get("Retry-After")) || 5) * 1000);
        continue;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    }
  }
  const say = (text) => { status.textContent = text; };
  const start = () => (pieces.length ? pieces[0].start : 0);
  const end = () => (pieces.length ? pieces[pieces.length - 1].end : 0);
  const atBottom = () => pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;

  function piece(startByte, endByte, text, mark) {
    let node;
    if (mark) { // a match: its line with the match in <mark>
      node = document.createElement("span");
      const at = Math.min(mark.column, text.length);
      const found = document.createElement("mark");
      found.textContent = text.slice(at, at + mark.length);
      node.append(text.slice(0, at), found, text.slice(at + mark.length));
    } else {
      node = document.createTextNode(text);
    }
    return { start: startByte, end: endByte, node, chars: text.length };
  }
  function notKept(bytes, at) {
    return piece(at, at, `[… ${bytes} earlier bytes not kept …]\n`);
  }
  function trim(fromStart) { // keep the page light: drop whole pieces from the far end
    let chars = pieces.reduce((sum, p) => sum + p.chars, 0);
    while (chars > MAX_CHARS && pieces.length > 1) {
      const dropped = fromStart ? pieces.shift() : pieces.pop();
      dropped.node.remove();
      chars -= dropped.chars;
      if (!fromStart) setFollowing(false);
    }
  }
  function updateEarlier() {
    const more = start() > keptFrom;
    earlierButton.disabled = !more;
    if (!more && keptFrom > 0 && !(pieces[0] && pieces[0].marker)) {
      const marker = notKept(keptFrom, keptFrom);
      marker.marker = true;
      pieces.unshift(marker);
      pre.prepend(marker.node);
    }
  }
  function setFollowing(on) {
    following = on;
    latestButton.hidden = on;
  }
  function replace(body, mark) {
    generation += 1;
    pieces = [piece(body.offset, body.next_offset, body.text, mark)];
    pre.replaceChildren(pieces[0].node);
    keptFrom = body.kept_from !== undefined ? body.kept_from : keptFrom;
    size = body.size;
    updateEarlier();
    setFollowing(body.next_offset >= body.size);
    if (following) follow(generation);
  }

  async function openAtEnd() {
    busy = true;
    try {
      replace(await get(`${base}?bytes=${WINDOW}`));
      pre.scrollTop = pre.scrollHeight;
      say(size ? "" : "No output yet.");
    } finally {
      busy = false;
    }
  }

  async function loadEarlier() {
    if (busy || start() <= keptFrom) return;
    busy = true;
    const mine = generation;
    try {
      const body = await get(`${base}?before=${start()}&bytes=${WINDOW}`);
      if (mine !== generation || !body.text) return;
      const height = pre.scrollHeight;
      const added = piece(body.offset, body.next_offset, body.text);
      pieces.unshift(added);
      pre.prepend(added.node);
      keptFrom = body.kept_from;
      trim(false);
      updateEarlier();
      pre.scrollTop += pre.scrollHeight - height; // keep what the reader was looking at in place
      if (start() <= keptFrom) say(keptFrom ? `Reached the first kept byte (${keptFrom}).` : "Reached the start of the log.");
    } finally {
      busy = false;
    }
  }

  async function loadLater() {
    if (busy || following) return;
    busy = true;
    const mine = generation;
    try {
      const body = await get(`${base}?after=${end()}`);
      if (mine !== generation) return;
      if (body.text) {
        const added = piece(body.offset, body.next_offset, body.text);
        pieces.push(added);
        pre.append(added.node);
        trim(true);
        updateEarlier();
      }
      size = body.size;
      if (body.next_offset >= body.size) {
        setFollowing(true);
        follow(generation);
      }
    } finally {
      busy = false;
    }
  }

  async function follow(mine) {
    while (mine === generation && following) {
      let body;
      try {
        body = await get(`${base}?after=${end()}`);
      } catch (error) {
        return;
      }
      if (mine !== generation || !following) return;
      if (body.offset > end()) { // bytes dropped before they were read
        const skipped = notKept(body.offset - end(), body.offset);
        pieces.push(skipped);
        pre.append(skipped.node);
      }
      if (body.text) {
        const bottom = atBottom();
        const added = piece(body.offset, body.next_offset, body.text);
        pieces.push(added);
        pre.append(added.node);
        trim(true);
        updateEarlier();
        if (bottom) pre.scrollTop = pre.scrollHeight;
      } else if (body.next_offset > end() && pieces.length) {
        pieces[pieces.length - 1].end = body.next_offset;
      }
      size = body.size;
      if (body.finished && body.next_offset >= body.size) return;
      await sleep(body.text ? 200 : 1000);
    }
  }

  async function jump(match, q) {
    say(`Match at byte ${match.offset}.`);
    const body = await get(`${base}?after=${match.line_offset}`);
    const window = { ...body, kept_from: keptFrom };
    replace(window, { column: match.column, length: q.length });
    const mark = pre.querySelector("mark");
    if (mark) {
      pre.scrollTop = mark.offsetTop - pre.offsetTop - pre.clientHeight / 3;
    }
    pre.focus();
  }

  function showMatch(match, q) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = match.text;
    button.setAttribute("aria-label", `Byte ${match.offset}: ${match.text}`);
    button.addEventListener("click", () => jump(match, q));
    item.append(button);
    matchList.append(item);
  }

  async function searchOn() {
    const { q } = search;
    moreButton.disabled = true;
    let found = 0;
    try {
      for (let call = 0; call < SEARCH_CALLS && search && search.q === q && search.next !== null; call += 1) {
        const body = await get(`${base}/search?q=${encodeURIComponent(q)}&from=${search.next}&limit=50`);
        if (!search || search.q !== q) return;
        body.matches.forEach((match) => showMatch(match, q));
        found += body.matches.length;
        search.next = body.next;
        if (found) break;
      }
    } catch (error) {
      say("The search failed; try again.");
      return;
    } finally {
      moreButton.disabled = false;
    }
    const total = matchList.children.length;
    results.hidden = total === 0 && search.next === null;
    moreButton.hidden = search.next === null;
    moreButton.textContent = found || total === 0 ? "More matches" : "Search further";
    if (search.next === null) say(total ? `${total} matches for “${q}”.` : `No matches for “${q}”.`);
    else say(`${total} matches for “${q}” up to byte ${search.next} of ${size}; more may follow.`);
    const first = matchList.children[total - found];
    if (found && first) first.querySelector("button").focus();
  }

  $("log-search").addEventListener("submit", (event) => {
    event.preventDefault();
    const q = $("log-q").value;
    if (!q) return;
    search = { q, next: 0 };
    matchList.replaceChildren();
    say(`Searching for “${q}”…`);
    searchOn();
  });
  moreButton.addEventListener("click", () => search && searchOn());
  earlierButton.addEventListener("click", loadEarlier);
  latestButton.addEventListener("click", () => openAtEnd().then(() => pre.focus()));
  pre.addEventListener("scroll", () => {
    if (pre.scrollTop < 40) loadEarlier();
    else if (!following && atBottom()) loadLater();
  });
  openAtEnd();
})();
