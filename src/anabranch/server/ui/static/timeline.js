// The timeline (Gantt) of a run's task runs and subflow runs, drawn on one canvas: only
// the rows in view are drawn, so 10,000 children cost what 30 do. Bars that overlap in
// time ran at the same time. Click a bar or its name to open its run.
(function () {
  "use strict";
  const ROW = 22, LABEL = 280, PAD = 12;

  function color(state) {
    const style = getComputedStyle(document.documentElement);
    const name = "--" + (state || "pending").toLowerCase();
    return style.getPropertyValue(name).trim() || "#888";
  }

  function setUp(box) {
    const scroll = box.querySelector(".timeline-scroll");
    const space = box.querySelector(".timeline-space");
    const canvas = box.querySelector("canvas");
    const axis = box.querySelector(".timeline-axis");
    const context = canvas.getContext("2d");
    let rows = [], start = 0, end = 1;

    function load() {
      return fetch(box.getAttribute("data-timeline"), { credentials: "same-origin" })
        .then(function (answer) { return answer.json(); })
        .then(function (data) {
          const now = Date.parse(data.now);
          rows = data.rows.map(function (row) {
            return {
              row: row,
              from: row.start ? Date.parse(row.start) : null,
              to: row.end ? Date.parse(row.end) : (row.start ? now : null),
            };
          });
          const starts = rows.filter(function (r) { return r.from !== null; });
          start = starts.length ? Math.min.apply(null, starts.map(function (r) { return r.from; })) : now;
          end = starts.length ? Math.max.apply(null, starts.map(function (r) { return r.to; })) : now;
          if (end <= start) end = start + 1;
          space.style.height = Math.max(rows.length * ROW, 1) + "px";
          drawAxis();
          draw();
          return rows.some(function (r) { return r.row.state === "RUNNING" || r.row.state === "PENDING"; });
        });
    }

    function x(moment) {
      const width = scroll.clientWidth - LABEL - PAD;
      return LABEL + ((moment - start) / (end - start)) * width;
    }

    function drawAxis() {
      axis.innerHTML = "";
      const span = end - start;
      for (let i = 0; i <= 4; i++) {
        const mark = document.createElement("span");
        mark.style.position = "absolute";
        mark.style.left = (x(start + (span * i) / 4) - (i === 4 ? 60 : 0)) + "px";
        mark.textContent = "+" + ((span * i) / 4000).toFixed(span < 10000 ? 2 : 0) + " s";
        axis.appendChild(mark);
      }
    }

    function draw() {
      const ratio = window.devicePixelRatio || 1;
      const width = scroll.clientWidth, height = scroll.clientHeight;
      if (canvas.width !== width * ratio || canvas.height !== height * ratio) {
        canvas.width = width * ratio; canvas.height = height * ratio;
        canvas.style.width = width + "px"; canvas.style.height = height + "px";
      }
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      context.clearRect(0, 0, width, height);
      const first = Math.floor(scroll.scrollTop / ROW);
      const last = Math.min(rows.length, first + Math.ceil(height / ROW) + 1);
      const text = getComputedStyle(document.body).color;
      context.font = "12px system-ui, sans-serif";
      context.textBaseline = "middle";
      for (let i = first; i < last; i++) {
        const item = rows[i], y = i * ROW - scroll.scrollTop;
        context.fillStyle = text;
        context.fillText((item.row.kind === "flow" ? "▣ " : "") + item.row.name.slice(0, 40), 8, y + ROW / 2, LABEL - 16);
        if (item.from === null) continue;
        context.fillStyle = color(item.row.state);
        const left = x(item.from);
        context.fillRect(left, y + 5, Math.max(x(item.to) - left, 2), ROW - 10);
      }
      if (!rows.length) {
        context.fillStyle = text;
        context.fillText("No task runs or subflow runs yet.", 8, ROW / 2);
      }
    }

    scroll.addEventListener("scroll", function () { window.requestAnimationFrame(draw); });
    window.addEventListener("resize", function () { drawAxis(); draw(); });
    canvas.addEventListener("click", function (event) {
      const bounds = canvas.getBoundingClientRect();
      const index = Math.floor((event.clientY - bounds.top + scroll.scrollTop) / ROW);
      if (rows[index]) window.location.href = rows[index].row.link;
    });

    function refresh() {
      load().then(function (moving) {
        if (moving && document.body.contains(box)) window.setTimeout(refresh, 3000);
      });
    }
    refresh();
  }

  document.querySelectorAll("[data-timeline]").forEach(setUp);
})();
