// Live pages: follow /ws/events and, when something the page shows changes, refetch the page's
// server-rendered body (one page of rows, with the page's filters; so the page and its live updates share
// one template) and change only the rows that differ: focus stays where it was, and each change is
// announced to screen readers (#live-announce). Reconnects resume after the last event seen, so no change
// is missed.
(function () {
  "use strict";
  const live = document.getElementById("live");
  if (!live) return;
  const status = document.getElementById("live-status");
  const kinds = (live.dataset.kinds || "job,queue,node,progress").split(",");
  // A page about some jobs only (data-job="12,13") follows only their events.
  const jobs = live.dataset.job ? live.dataset.job.split(",").map(Number) : null;
  let last = live.dataset.after ? Number(live.dataset.after) : null;  // what the page already shows
  let retry = 500;
  let timer = null;
  let fetching = false;
  let again = false;

  function show(text, cls) {
    if (!status) return;
    status.textContent = text;
    status.className = "live-status " + (cls || "");
  }

  async function refresh() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const response = await fetch(live.dataset.fragment, { credentials: "same-origin" });
      if (response.ok) {
        announce(morph(await response.text()));
        live.dispatchEvent(new CustomEvent("gpuq:refreshed"));
      }
    } finally {
      fetching = false;
      if (again) { again = false; refresh(); }
    }
  }

  // The blocks of a body: its sections (data-section) and swapped parts (data-swap), by name.
  function blocks(root) {
    return Array.from(root.children).map(function (el) {
      if (el.dataset.section) return "section:" + el.dataset.section;
      if (el.hasAttribute("data-swap")) return "swap:" + (el.id || el.className);
      return "other:" + el.tagName;
    });
  }

  // Make the page's body equal to `html`, touching only what differs. Returns what changed, in words.
  function morph(html) {
    const next = document.createElement("div");
    next.innerHTML = html;
    const changes = [];
    if (blocks(live).join() !== blocks(next).join()) {
      live.innerHTML = html;
      changes.push("the list was updated");
      return changes;
    }
    Array.from(next.children).forEach(function (fresh, i) {
      const old = live.children[i];
      if (same(old, fresh)) return;
      const oldRows = old.querySelector("tbody[data-rows]");
      const newRows = fresh.querySelector("tbody[data-rows]");
      if (!oldRows || !newRows) {
        const hadFocus = old.contains(document.activeElement);
        const before = new Set(Array.from(old.querySelectorAll("tr[data-job]")).map(function (row) { return row.dataset.job; }));
        fresh.querySelectorAll("tr[data-job]").forEach(function (row) {
          if (!before.delete(row.dataset.job)) changes.push("job #" + row.dataset.job + " " + row.dataset.status);
        });
        before.forEach(function (id) { changes.push("job #" + id + " left " + sectionName(old)); });
        old.replaceWith(fresh);
        if (hadFocus) focusIn(fresh, null);
        return;
      }
      morphRows(oldRows, newRows, changes);
      morphAround(old, fresh, oldRows.closest("table"), newRows.closest("table"));
    });
    return changes;
  }

  // Equal but for what changes on every render: the CSRF token (masked anew for each response) and the
  // "changed" highlight a row keeps for a moment after an update.
  function normal(el) {
    const copy = el.cloneNode(true);
    copy.querySelectorAll("input[name=csrfmiddlewaretoken]").forEach(function (input) { input.removeAttribute("value"); });
    const marked = Array.from(copy.querySelectorAll(".changed"));
    if (copy.classList.contains("changed")) marked.push(copy);
    marked.forEach(function (mark) { mark.classList.remove("changed"); if (!mark.classList.length) mark.removeAttribute("class"); });
    return copy;
  }

  function same(old, fresh) {
    return normal(old).isEqualNode(normal(fresh));
  }

  function sectionName(section) {
    const heading = section.querySelector("h2");
    return heading ? heading.textContent : "the list";
  }

  // Rows keyed by data-job: stale ones go, new ones come in, changed ones are replaced, all in order.
  function morphRows(body, fresh, changes) {
    const wanted = Array.from(fresh.children);
    const keep = new Set(wanted.map(function (row) { return row.dataset.job; }));
    const old = new Map();
    Array.from(body.children).forEach(function (row) {
      if (keep.has(row.dataset.job)) { old.set(row.dataset.job, row); return; }
      changes.push("job #" + row.dataset.job + " left " + sectionName(body.closest("section") || live));
      row.remove();
    });
    wanted.forEach(function (row, i) {
      let current = old.get(row.dataset.job);
      if (!current) {
        changes.push("job #" + row.dataset.job + " " + row.dataset.status);
        row.classList.add("changed");
        current = row;
      } else if (!same(current, row)) {
        if (current.dataset.status !== row.dataset.status) {
          changes.push("job #" + row.dataset.job + " " + row.dataset.status);
        }
        const focused = current.contains(document.activeElement) ? document.activeElement : null;
        current.replaceWith(row);
        row.classList.add("changed");
        if (focused) focusIn(row, focused);
        current = row;
      }
      if (body.children[i] !== current) body.insertBefore(current, body.children[i] || null);
    });
  }

  // What surrounds a section's table (heading, pager) is replaced only when it differs.
  function morphAround(section, fresh, table, freshTable) {
    const outside = function (root, skip) {
      return Array.from(root.children).filter(function (el) { return el !== skip; });
    };
    const before = outside(section, table), after = outside(fresh, freshTable);
    if (before.map(function (el) { return el.outerHTML; }).join() === after.map(function (el) { return el.outerHTML; }).join()) return;
    const focused = before.some(function (el) { return el.contains(document.activeElement); });
    before.forEach(function (el) { el.remove(); });
    let past = false;
    Array.from(fresh.children).forEach(function (el) {
      if (el === freshTable) { past = true; return; }
      if (past) section.appendChild(el); else section.insertBefore(el, table);
    });
    if (focused) focusIn(section, null);
  }

  // Put focus back on the control that had it (same action, or the row's first control).
  function focusIn(root, was) {
    let target = null;
    if (was && was.dataset && was.dataset.action) target = root.querySelector('[data-action="' + was.dataset.action + '"]');
    if (!target && was && was.tagName === "A") target = root.querySelector("a");
    if (!target) target = root.querySelector("button, a, input, select");
    if (target) target.focus();
  }

  function announce(changes) {
    const region = document.getElementById("live-announce");
    if (!region || !changes.length) return;
    const shown = changes.slice(0, 3);
    if (changes.length > 3) shown.push("and " + (changes.length - 3) + " more changes");
    region.textContent = "";
    setTimeout(function () { region.textContent = shown.join("; ") + "."; }, 50);
  }

  function soon() {
    clearTimeout(timer);
    timer = setTimeout(refresh, 100);
  }

  function progress(event) {
    const bar = live.querySelector('[data-progress="' + event.job + '"]');
    const fraction = event.data.progress && event.data.progress.fraction;
    if (!bar || typeof fraction !== "number") return false;
    bar.value = fraction;
    const label = bar.nextElementSibling;
    if (label) label.textContent = Math.round(fraction * 100) + "%" + (event.data.progress.message ? " " + event.data.progress.message : "");
    return true;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/ws/events" + (last !== null ? "?after=" + last : ""));
    socket.onopen = function () { retry = 500; show("live", "on"); };
    socket.onmessage = function (message) {
      const event = JSON.parse(message.data);
      if (event.kind === "hello") { last = event.id; return; }
      if (event.kind === "reset") { last = event.id; live.dispatchEvent(new CustomEvent("gpuq:event", { detail: event })); refresh(); return; }
      last = event.id;
      live.dispatchEvent(new CustomEvent("gpuq:event", { detail: event }));  // for the job page's charts
      if (!kinds.includes(event.kind)) return;
      if (jobs && !jobs.includes(event.job)) return;
      if (event.kind === "progress" && progress(event)) return;
      soon();
    };
    socket.onclose = function (closed) {
      // 4401: the session ended (logged out, expired, password changed); 4403: the user was deactivated.
      // Reconnecting cannot help: go to the login page, which brings the user back here afterwards.
      if (closed.code === 4401 || closed.code === 4403) {
        show("signed out", "off");
        location.assign("/accounts/login/?next=" + encodeURIComponent(location.pathname + location.search));
        return;
      }
      show("reconnecting…", "off");
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    };
  }
  connect();
})();
