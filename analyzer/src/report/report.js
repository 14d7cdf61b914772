"use strict";
// Records what the page met, so a headless browser (and a reader) can check it: errors,
// requests the Content-Security-Policy blocked, and resources fetched (none are expected).
const problems = [];
function record() {
  document.body.dataset.errors = String(problems.length);
  document.body.dataset.resources = String(performance.getEntriesByType("resource").length);
}
window.addEventListener("error", (e) => { problems.push(String(e.message)); record(); });
document.addEventListener("securitypolicyviolation", (e) => { problems.push("blocked " + e.blockedURI); record(); });

// Sorts a table's body by one column: numbers by their data-v value, text by its content.
function sortBy(table, column, head) {
  const direction = head.dataset.dir === "asc" ? "desc" : "asc";
  table.querySelectorAll("thead th").forEach((h) => delete h.dataset.dir);
  head.dataset.dir = direction;
  const key = (row) => {
    const cell = row.cells[column];
    return cell.dataset.v !== undefined ? Number(cell.dataset.v) : cell.textContent.trim();
  };
  const body = table.tBodies[0];
  const rows = Array.from(body.rows).sort((a, b) => {
    const x = key(a), y = key(b);
    const order = x < y ? -1 : x > y ? 1 : 0;
    return direction === "asc" ? order : -order;
  });
  rows.forEach((row) => body.appendChild(row));
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("table.sortable").forEach((table) => {
    table.querySelectorAll("thead th").forEach((head, column) => head.addEventListener("click", () => sortBy(table, column, head)));
  });
});
window.addEventListener("load", () => { record(); document.body.dataset.ready = "1"; });
