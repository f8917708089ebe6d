// Drag-and-drop order of the waiting queue in the admin: dropping a job on another puts it just before
// that one (on the last half of the last job: after it). The server answers with the new order.
(function () {
  "use strict";
  const list = document.getElementById("queue");
  if (!list) return;
  const status = document.getElementById("status");
  let dragged = null;

  list.addEventListener("dragstart", function (e) {
    dragged = e.target.closest("li[data-job]");
    if (!dragged) return;
    dragged.classList.add("dragging");
    e.dataTransfer.effectAllowed = "move";
    e.dataTransfer.setData("text/plain", dragged.dataset.job);
  });
  list.addEventListener("dragend", function () {
    if (dragged) dragged.classList.remove("dragging");
    list.querySelectorAll(".over").forEach(function (li) { li.classList.remove("over"); });
  });
  list.addEventListener("dragover", function (e) {
    const target = e.target.closest("li[data-job]");
    if (!target || target === dragged) return;
    e.preventDefault();
    list.querySelectorAll(".over").forEach(function (li) { li.classList.remove("over"); });
    target.classList.add("over");
  });
  list.addEventListener("drop", async function (e) {
    const target = e.target.closest("li[data-job]");
    if (!target || !dragged || target === dragged) return;
    e.preventDefault();
    const rect = target.getBoundingClientRect();
    const last = !target.nextElementSibling;
    const side = last && e.clientY > rect.top + rect.height / 2 ? "after" : "before";
    const body = new URLSearchParams({ job: dragged.dataset.job });
    body.set(side, target.dataset.job);
    const response = await fetch(list.dataset.move, {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": list.dataset.csrf },
      credentials: "same-origin",
    });
    const answer = await response.json();
    if (!response.ok) { status.textContent = answer.detail; return; }
    const rows = {};
    list.querySelectorAll("li[data-job]").forEach(function (li) { rows[li.dataset.job] = li; });
    answer.order.forEach(function (id, i) {
      const li = rows[id];
      if (!li) return;
      li.querySelector(".pos").textContent = i + 1;
      list.appendChild(li);
    });
    status.textContent = "Moved job " + dragged.dataset.job + ".";
  });
})();
