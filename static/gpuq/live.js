// Live pages: follow /ws/events and, when something the page shows changes, refetch the page's
// server-rendered body (so the page and its live updates share one template). Reconnects resume after
// the last event seen, so no change is missed.
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
        live.innerHTML = await response.text();
        live.dispatchEvent(new CustomEvent("gpuq:refreshed"));
      }
    } finally {
      fetching = false;
      if (again) { again = false; refresh(); }
    }
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
      if (event.kind === "reset") { last = event.id; refresh(); return; }
      last = event.id;
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
