// Draws the compare page's charts from its <script type="application/json" id="compare-data">
// block with Chart.js (vendored: chart.umd.min.js, MIT, see chart.js-LICENSE.md). No inline
// script: the page's CSP allows scripts from this origin only.
(function () {
  "use strict";
  var block = document.getElementById("compare-data");
  if (!block || typeof Chart === "undefined") {
    return;
  }
  var data = JSON.parse(block.textContent);
  var palette = ["#0b57d0", "#d93025", "#188038", "#e37400", "#9334e6",
                 "#007b83", "#b3261e", "#5f6368", "#a142f4", "#1967d2"];
  var quiet = window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function draw(id, config, points) {
    var canvas = document.getElementById(id);
    if (!canvas) {
      return;
    }
    config.options = Object.assign({
      responsive: true,
      maintainAspectRatio: false,
      animation: quiet ? false : { duration: 300 },
      plugins: { legend: { position: "bottom" } }
    }, config.options || {});
    new Chart(canvas, config);
    canvas.setAttribute("data-points", String(points));
  }

  var metrics = data.metrics;
  if (metrics.labels.length) {
    var count = 0;
    draw("metrics-chart", {
      type: "bar",
      data: {
        labels: metrics.labels,
        datasets: metrics.datasets.map(function (set, i) {
          count += set.data.filter(function (v) { return v !== null; }).length;
          return { label: set.label, data: set.data, backgroundColor: palette[i % palette.length] };
        })
      }
    }, count);
  }
  var trend = data.trend;
  if (trend.metric) {
    draw("trend-chart", {
      type: "line",
      data: {
        labels: trend.labels,
        datasets: [{ label: trend.metric, data: trend.data, borderColor: palette[0],
                     backgroundColor: palette[0], pointRadius: trend.data.length > 100 ? 0 : 3 }]
      },
      options: { plugins: { legend: { display: false } } }
    }, trend.data.length);
  }
})();
