"use strict";
// Compare view of a trustmh report: per subtask, a matrix of the pairwise verdicts (protocol 1.9);
// clicking a cell lists the samples on which the two runs disagree, both replies side by side.
// Every text from the data goes into the page through textContent, never as HTML.
(function () {
  const PAGE = 50;
  const source = document.getElementById("trustmh-compare");
  if (!source) return;
  const cmp = JSON.parse(source.textContent);
  const meta = JSON.parse(document.getElementById("trustmh-meta").textContent);
  const data = JSON.parse(document.getElementById("trustmh-samples").textContent);
  const col = {};
  data.columns.forEach((name, i) => { col[name] = i; });
  const $ = (id) => document.getElementById(id);
  const el = (tag, text, cls) => {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  };
  const num = (x, digits) => (x === null || x === undefined ? "—" : Number(x).toFixed(digits));
  const signed = (x) => (x >= 0 ? "+" : "") + num(x, 3);
  const pval = (p) => (p === null || p === undefined ? "—" : (p < 1e-4 ? "<0.0001" : Number(p).toPrecision(2)));
  const tasks = [];  // subtask ids with a comparison, in report order
  cmp.subtasks.forEach((r) => { if (!tasks.includes(r.task)) tasks.push(r.task); });
  const state = { task: tasks.find((t) => cmp.subtasks.some((r) => r.task === t && r.p !== null)) || tasks[0],
    a: -1, b: -1, page: 0, open: new Set() };

  function rowFor(task, i, j) {
    const [a, b] = i < j ? [i, j] : [j, i];
    return cmp.subtasks.find((r) => r.task === task && r.a === a && r.b === b);
  }

  // The verdict of run i against run j, from i's side.
  function cellOf(task, i, j) {
    const r = rowFor(task, i, j);
    if (!r) return { text: "—", cls: "cmp-none", tip: "" };
    const sign = r.a === i ? 1 : -1;
    const tip = [r.verdict_text, r.test ? "test: " + r.test : "", ...(r.warnings || [])]
      .filter((x) => x).join("\n");
    if (r.verdict === "a_better" || r.verdict === "b_better") {
      const better = (r.verdict === "a_better") === (r.a === i);
      return { text: (better ? "better " : "worse ") + signed(sign * r.diff) + " (p " + pval(r.p_holm) + ")",
        cls: better ? "cmp-better" : "cmp-worse", tip };
    }
    if (r.verdict === "no_difference") {
      return { text: "no detectable difference " + signed(sign * r.diff) +
        (r.mdd !== null ? " (±" + num(r.mdd, 3) + ")" : ""), cls: "cmp-same", tip };
    }
    return { text: r.verdict === "too_few" ? r.verdict_text : "not comparable", cls: "cmp-na", tip };
  }

  function renderMatrix() {
    const table = $("cmp-matrix");
    table.textContent = "";
    const head = el("tr");
    head.appendChild(el("th", "row run vs column run"));
    meta.runs.forEach((label) => head.appendChild(el("th", label)));
    const thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    const body = el("tbody");
    meta.runs.forEach((label, i) => {
      const tr = el("tr");
      tr.appendChild(el("th", label));
      meta.runs.forEach((_, j) => {
        const td = el("td");
        if (i === j) {
          td.textContent = "—";
        } else {
          const cell = cellOf(state.task, i, j);
          const button = el("button", cell.text, "cmp-cell " + cell.cls);
          button.type = "button";
          button.title = cell.tip;
          button.dataset.a = String(i);
          button.dataset.b = String(j);
          if (state.a === i && state.b === j) button.classList.add("on");
          button.addEventListener("click", () => { go({ a: i, b: j, page: 0, open: new Set() }); });
          td.appendChild(button);
        }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    table.appendChild(body);
  }

  function samplesOf(run, task) {
    const t = meta.tasks.findIndex((x) => x.id === task);
    const out = new Map();
    data.rows.forEach((row) => {
      if (row[col.run] === run && row[col.task] === t) out.set(row[col.id] + "\u0000" + row[col.variant], row);
    });
    return out;
  }

  // Samples both runs have whose status or score differ, largest score gap first.
  function disagreements() {
    const left = samplesOf(state.a, state.task);
    const right = samplesOf(state.b, state.task);
    const out = [];
    let shared = 0;
    left.forEach((x, key) => {
      const y = right.get(key);
      if (!y) return;
      shared += 1;
      if (x[col.status] !== y[col.status] || x[col.score] !== y[col.score]) out.push([x, y]);
    });
    const gap = (pair) => (pair[0][col.score] === null || pair[1][col.score] === null ? -1
      : Math.abs(pair[0][col.score] - pair[1][col.score]));
    out.sort((p, q) => gap(q) - gap(p));
    return { pairs: out, shared };
  }

  function scoreText(row) {
    return row[col.status] + (row[col.score] === null ? "" : " " + row[col.score]);
  }

  function detailRow(x, y) {
    const tr = el("tr");
    const td = el("td", null, "detail");
    td.colSpan = 6;
    td.appendChild(el("h4", "Prompt"));
    td.appendChild(el("pre", data.prompts[x[col.prompt]]));
    [[x, meta.runs[state.a]], [y, meta.runs[state.b]]].forEach(([row, label]) => {
      ["parsed", "judge", "detail", "error"].forEach((field) => {
        const text = row[col[field]];
        if (text === "" || text === null || text === undefined) return;
        td.appendChild(el("h4", label + ": " + field));
        td.appendChild(el("pre", text));
      });
    });
    tr.appendChild(td);
    return tr;
  }

  function renderItems() {
    const box = $("cmp-detail");
    const body = $("cmp-items");
    body.textContent = "";
    if (state.a < 0) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const r = rowFor(state.task, state.a, state.b);
    const labelA = meta.runs[state.a], labelB = meta.runs[state.b];
    $("cmp-title").textContent = state.task + ": " + labelA + " vs " + labelB;
    $("cmp-verdict").textContent = r ? verdictLine(r) : "";
    $("cmp-head-a").textContent = labelA;
    $("cmp-head-b").textContent = labelB;
    $("cmp-reply-a").textContent = "reply: " + labelA;
    $("cmp-reply-b").textContent = "reply: " + labelB;
    const { pairs, shared } = disagreements();
    const pages = Math.max(1, Math.ceil(pairs.length / PAGE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    const start = state.page * PAGE;
    pairs.slice(start, start + PAGE).forEach(([x, y], k) => {
      const index = start + k;
      const tr = el("tr", null, "item");
      [x[col.id], x[col.variant], scoreText(x), scoreText(y), x[col.response], y[col.response]]
        .forEach((text, c) => {
          const td = el("td", c >= 4 ? null : text);
          if (c >= 4) td.appendChild(el("pre", text, "reply"));
          tr.appendChild(td);
        });
      tr.addEventListener("click", () => {
        if (state.open.has(index)) state.open.delete(index); else state.open.add(index);
        render();
      });
      body.appendChild(tr);
      if (state.open.has(index)) body.appendChild(detailRow(x, y));
    });
    $("cmp-count").textContent = pairs.length
      ? pairs.length + " of " + shared + " shared samples differ; rows " + (start + 1) + "–" +
        Math.min(start + PAGE, pairs.length)
      : "the two runs agree on all " + shared + " shared samples";
    $("cmp-prev").disabled = state.page === 0;
    $("cmp-next").disabled = state.page >= pages - 1;
  }

  function verdictLine(r) {
    const a = meta.runs[r.a], b = meta.runs[r.b];
    const parts = [r.verdict_text];
    if (r.diff !== null) {
      parts.push(a + " " + num(r.value_a, 3) + " vs " + b + " " + num(r.value_b, 3) + ", difference " +
        signed(r.diff) + " [" + signed(r.ci_low) + ", " + signed(r.ci_high) + "] on " + r.n_shared + " " +
        r.unit + "s; " + r.test + " p " + pval(r.p) + ", Holm " + pval(r.p_holm));
    }
    (r.warnings || []).forEach((w) => parts.push("warning: " + w));
    return parts.join(" · ");
  }

  function render() {
    renderMatrix();
    renderItems();
  }

  function go(change) {
    Object.assign(state, change);
    render();
  }

  const select = $("cmp-task");
  tasks.forEach((task) => {
    const opt = el("option", task);
    opt.value = task;
    select.appendChild(opt);
  });
  select.value = state.task;
  select.addEventListener("change", () => { go({ task: select.value, page: 0, open: new Set() }); });
  $("cmp-prev").addEventListener("click", () => { go({ page: state.page - 1 }); });
  $("cmp-next").addEventListener("click", () => { go({ page: state.page + 1 }); });
  render();
  document.body.dataset.compareReady = "1";
})();
