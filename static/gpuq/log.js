// Follow a job's log: ask the API for what was written after the last byte seen, once a second, until
// the job has finished and everything is read.
(function () {
  "use strict";
  const pre = document.getElementById("log");
  if (!pre) return;
  let offset = 0;
  async function follow() {
    try {
      const response = await fetch(pre.dataset.log + "?offset=" + offset, { credentials: "same-origin" });
      if (!response.ok) return;
      const body = await response.json();
      if (body.text) {
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.append(body.text);
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      }
      offset = body.next_offset;
      if (body.finished && offset >= body.size) return;
      setTimeout(follow, body.text ? 200 : 1000);
    } catch (error) {
      setTimeout(follow, 2000);
    }
  }
  follow();
})();
