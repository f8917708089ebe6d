// Follow a job's log: ask the API for what was written after the last byte seen, once a second, until
// the job has finished and everything is read. The API reads it from the database, whichever node runs
// the job; when the oldest bytes are no longer kept (GPUQ_LOG_DB_MAX_BYTES), it says how many were skipped.
(function () {
  "use strict";
  const pre = document.getElementById("log");
  if (!pre) return;
  let offset = 0;
  async function follow() {
    try {
      const response = await fetch(pre.dataset.log + "?offset=" + offset, { credentials: "same-origin" });
      if (response.status === 503) {  // the database is away for a moment: try again when told
        setTimeout(follow, (Number(response.headers.get("Retry-After")) || 5) * 1000);
        return;
      }
      if (!response.ok) return;
      const body = await response.json();
      if (body.offset > offset) pre.append(`[… ${body.offset - offset} earlier bytes not kept …]\n`);
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
