"use strict";
// Sample drill-down of a trustmh report. Reads the JSON blocks, renders one page of rows at a time.
// Every text from the data goes into the page through textContent, never as HTML.
(function () {
  const PAGE = 50;
  // "failed": the request or its scoring failed (retried by a rerun); "not recorded": a replayed
  // model has no answer for it (the authors did not record it); "not scored yet": never finished
  const FILTERS = [
    ["all", "all", () => true],
    ["wrong", "wrong", (r, c) => r[c.wrong] === 1],
    ["refused", "refused", (r, c) => r[c.status] === "refused"],
    ["unparsed", "unparseable", (r, c) => r[c.status] === "unparsed"],
    ["failed", "failed", (r, c) => r[c.status] === "error"],
    ["missing", "not recorded", (r, c) => r[c.status] === "missing"],
    ["pending", "not scored yet", (r, c) => r[c.status] === "pending"],
    ["cut", "cut short", (r, c) => Boolean(r[c.cut])],
  ];
  const meta = JSON.parse(document.getElementById("trustmh-meta").textContent);
  const data = JSON.parse(document.getElementById("trustmh-samples").textContent);
  const col = {};
  data.columns.forEach((name, i) => { col[name] = i; });
  const groups = new Map();  // "run|task" -> row indices in sample order
  data.rows.forEach((row, i) => {
    const key = row[col.run] + "|" + row[col.task];
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(i);
  });
  const state = { run: 0, task: -1, filter: "all", query: "", sort: "order", page: 0, open: new Set() };
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  };

  function firstTaskOf(run) {
    for (let t = 0; t < meta.tasks.length; t++) if (groups.has(run + "|" + t)) return t;
    return -1;
  }

  function buildSelectors() {
    const runSel = $("dd-run");
    meta.runs.forEach((label, i) => {
      const opt = el("option", label);
      opt.value = String(i);
      runSel.appendChild(opt);
    });
    runSel.addEventListener("change", () => { go({ run: Number(runSel.value), task: -1, page: 0 }); });
    $("dd-task").addEventListener("change", () => { go({ task: Number($("dd-task").value), page: 0 }); });
    $("dd-sort").addEventListener("change", () => { go({ sort: $("dd-sort").value, page: 0 }); });
    let timer = null;
    $("dd-search").addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => { go({ query: $("dd-search").value.trim().toLowerCase(), page: 0 }); }, 200);
    });
    $("dd-prev").addEventListener("click", () => { go({ page: state.page - 1 }); });
    $("dd-next").addEventListener("click", () => { go({ page: state.page + 1 }); });
  }

  function fillTasks() {
    const taskSel = $("dd-task");
    taskSel.textContent = "";
    meta.tasks.forEach((task, t) => {
      const rows = groups.get(state.run + "|" + t);
      if (!rows) return;
      const opt = el("option", task.id + " (" + rows.length + ")");
      opt.value = String(t);
      taskSel.appendChild(opt);
    });
    taskSel.value = String(state.task);
  }

  function matches(row) {
    if (!state.query) return true;
    const q = state.query;
    return data.prompts[row[col.prompt]].toLowerCase().includes(q) ||
      [col.id, col.variant, col.response, col.parsed, col.judge, col.error, col.reasoning]
        .some((i) => String(row[i]).toLowerCase().includes(q));
  }

  function selected() {
    const base = groups.get(state.run + "|" + state.task) || [];
    const test = FILTERS.find((f) => f[0] === state.filter)[2];
    let rows = base.filter((i) => test(data.rows[i], col) && matches(data.rows[i]));
    if (state.sort !== "order") {
      const sign = state.sort === "score-asc" ? 1 : -1;
      rows = rows.slice().sort((a, b) => {
        const x = data.rows[a][col.score], y = data.rows[b][col.score];
        if (x === null) return 1;
        if (y === null) return -1;
        return sign * (x - y);
      });
    }
    return { base, rows };
  }

  function renderFilters(base) {
    const box = $("dd-filters");
    box.textContent = "";
    FILTERS.forEach(([key, label, test]) => {
      const n = base.filter((i) => test(data.rows[i], col)).length;
      const button = el("button", label + " (" + n + ")", state.filter === key ? "on" : "");
      button.type = "button";
      button.dataset.filter = key;
      button.addEventListener("click", () => { go({ filter: key, page: 0 }); });
      box.appendChild(button);
    });
  }

  const views = data.views || {};

  function conversationView(view) {
    // a multi-step sample: its turns, and beside them the judge's question path and ratings
    const box = el("div", null, "convo");
    const left = el("div", null, "turns");
    left.appendChild(el("h4", "Conversation: " + view.turns.length + " turns" +
      (view.ended ? " (ended: " + view.ended + ")" : "")));
    const turns = el("ol", null, "turnlist");
    view.turns.forEach((turn, k) => {
      const li = el("li", null, turn[0] === "user" ? "turn t-user" : "turn t-agent");
      li.appendChild(el("div", turn[0] + " · turn " + (k + 1), "who"));
      li.appendChild(el("pre", turn[1]));
      turns.appendChild(li);
    });
    left.appendChild(turns);
    const right = el("div", null, "path");
    right.appendChild(el("h4", "Judge: " + view.path.length + " questions"));
    const names = Object.keys(view.ratings);
    if (names.length) {
      const table = el("table", null, "ratings");
      names.forEach((name) => {
        const tr = el("tr");
        tr.appendChild(el("td", name));
        tr.appendChild(el("td", view.ratings[name]));
        table.appendChild(tr);
      });
      right.appendChild(table);
    }
    const steps = el("ol", null, "steplist");
    view.path.forEach((step) => {
      const flaw = (step.answer || "").toLowerCase() === "yes";
      const li = el("li", null, flaw ? "step flaw" : "step");
      li.appendChild(el("div", "Q" + step.id + " · " + step.dimension +
        (step.severity ? " · " + step.severity : ""), "who"));
      li.appendChild(el("div", step.question, "q"));
      li.appendChild(el("div", "answer: " + (step.answer || "(not readable)") +
        (step.next ? " → Q" + step.next : ""), "a"));
      if (step.reasoning) li.appendChild(el("div", step.reasoning, "r"));
      const raw = el("details");
      raw.appendChild(el("summary", step.raw.length > 1 ? "judge's replies (" + step.raw.length + ")" : "judge's reply"));
      step.raw.forEach((text) => { raw.appendChild(el("pre", text)); });
      li.appendChild(raw);
      steps.appendChild(li);
    });
    right.appendChild(steps);
    box.appendChild(left);
    box.appendChild(right);
    return box;
  }

  function detailRow(row, index) {
    const tr = el("tr");
    const td = el("td", null, "detail");
    td.colSpan = 7;
    const view = views[String(index)];
    if (view) td.appendChild(conversationView(view));
    const cut = { length: "the answer was cut by its token cap (what there is of it was scored)",
      empty: "no answer: the token cap was reached, or the model stopped, after reasoning (not scored)" };
    const parts = [["Prompt", data.prompts[row[col.prompt]]],
      ["Response (the answer: the only part parsed)", view ? "" : row[col.response]],
      ["Reasoning (kept apart from the answer, never parsed)", row[col.reasoning]],
      ["Cut short", cut[row[col.cut]] || row[col.cut]],
      ["Judge verdict", row[col.judge]], ["Detail", row[col.detail]], ["Error", row[col.error]]];
    parts.forEach(([title, text]) => {
      if (text === "" || text === null || text === undefined) return;
      td.appendChild(el("h4", title));
      td.appendChild(el("pre", text));
    });
    tr.appendChild(td);
    return tr;
  }

  function render() {
    fillTasks();
    const task = meta.tasks[state.task];
    $("dd-title").textContent = task ? task.id + " — " + task.title + " — " + meta.runs[state.run] : "no samples";
    const { base, rows } = selected();
    renderFilters(base);
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * PAGE;
    const body = $("dd-rows");
    body.textContent = "";
    rows.slice(start, start + PAGE).forEach((i) => {
      const row = data.rows[i];
      const tr = el("tr", null, "item");
      tr.dataset.index = String(i);
      const score = row[col.score] === null ? "—" : String(row[col.score]);
      const view = views[String(i)];
      const response = view ? "conversation: " + view.turns.length + " turns, " + view.path.length +
        " judge questions (open the row)" : row[col.response];
      const cells = [row[col.id], row[col.variant], row[col.status], score, row[col.parsed],
        row[col.target], response];
      cells.forEach((text, c) => {
        const td = el("td", text, c === 2 ? "st-" + row[col.status] : (c === 3 ? "num" : ""));
        td.title = String(text).slice(0, 400);
        if (c === 3 && row[col.wrong] === 1) td.appendChild(el("span", " ✗", "wrongmark"));
        tr.appendChild(td);
      });
      tr.addEventListener("click", () => {
        if (state.open.has(i)) state.open.delete(i); else state.open.add(i);
        render();
      });
      body.appendChild(tr);
      if (state.open.has(i)) {
        tr.className = "item open";
        body.appendChild(detailRow(row, i));
      }
    });
    $("dd-count").textContent = rows.length
      ? "rows " + (start + 1) + "–" + Math.min(start + PAGE, rows.length) + " of " + rows.length
      : "no sample matches";
    $("dd-prev").disabled = state.page === 0;
    $("dd-next").disabled = state.page >= pages - 1;
  }

  function go(change) {
    Object.assign(state, change);
    if (state.task < 0 || !groups.has(state.run + "|" + state.task)) state.task = firstTaskOf(state.run);
    if (!("open" in change) && ("task" in change || "run" in change || "filter" in change)) state.open = new Set();
    render();
  }

  function fromHash() {
    const hash = location.hash || "";  // URLSearchParams decodes each value itself
    if (!hash.startsWith("#samples?")) return false;
    const params = new URLSearchParams(hash.slice("#samples?".length));
    const run = Number(params.get("run") || 0);
    const taskId = params.get("task");
    const task = meta.tasks.findIndex((t) => t.id === taskId);
    const filter = params.get("filter") || "all";
    go({ run: Number.isInteger(run) && run >= 0 && run < meta.runs.length ? run : 0, task,
      filter: FILTERS.some((f) => f[0] === filter) ? filter : "all", page: 0, query: "" });
    $("dd-search").value = "";
    $("dd-run").value = String(state.run);
    $("samples").scrollIntoView();
    return true;
  }

  buildSelectors();
  if (!fromHash()) go({ run: 0, task: -1 });
  window.addEventListener("hashchange", fromHash);
  document.body.dataset.ready = "1";
  if (window.performance && performance.mark) performance.mark("trustmh-ready");
})();
