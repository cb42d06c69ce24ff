/* Plotly charts drawn from JSON the page embeds with json_script.
 *   <div class="chart" data-chart="equity|candles" data-source="script-id"></div>
 */
(function () {
  "use strict";

  const FONT = { family: "ui-sans-serif, system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#334155" };
  const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d", "toImage"] };
  const GRID = "#eef2f7";

  function baseLayout(extra) {
    return Object.assign({
      font: FONT,
      margin: { l: 12, r: 72, t: 10, b: 36 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      hovermode: "x unified",
      showlegend: false,
      xaxis: { gridcolor: GRID, linecolor: "#cbd5e1" },
      yaxis: { gridcolor: GRID, linecolor: "#cbd5e1", tickformat: ",.2f", side: "right" },
    }, extra || {});
  }

  function equity(el, data) {
    const traces = [
      {
        type: "scatter", mode: "lines", name: "High-water mark", x: data.x, y: data.hwm,
        line: { color: "#94a3b8", width: 1, dash: "dot" }, hovertemplate: "%{y:,.2f}<extra>HWM</extra>",
      },
      {
        type: "scatter", mode: "lines", name: "Equity", x: data.x, y: data.equity,
        line: { color: "#2563eb", width: 2 }, fill: "tozeroy", fillcolor: "rgba(37, 99, 235, 0.08)",
        hovertemplate: "%{y:,.2f}<extra>Equity</extra>",
      },
    ];
    const values = data.equity.concat(data.hwm).map(Number);
    const low = Math.min.apply(null, values);
    const high = Math.max.apply(null, values);
    const pad = Math.max((high - low) * 0.1, high * 0.002, 1);
    window.Plotly.newPlot(el, traces, baseLayout({
      yaxis: { gridcolor: GRID, tickformat: ",.0f", side: "right", range: [low - pad, high + pad] },
    }), CONFIG);
  }

  function candles(el, data) {
    const traces = [
      {
        type: "candlestick", name: data.symbol, x: data.x, open: data.open, high: data.high, low: data.low, close: data.close,
        increasing: { line: { color: "#0e9f6e" }, fillcolor: "#0e9f6e" },
        decreasing: { line: { color: "#e02424" }, fillcolor: "#e02424" },
        yaxis: "y",
      },
      {
        type: "bar", name: "Volume", x: data.x, y: data.volume, yaxis: "y2",
        marker: { color: data.close.map(function (c, i) { return c >= data.open[i] ? "rgba(14,159,110,0.35)" : "rgba(224,36,36,0.35)"; }) },
        hovertemplate: "%{y:,.0f}<extra>Volume</extra>",
      },
    ];
    window.Plotly.newPlot(el, traces, baseLayout({
      hovermode: "x",
      // A category axis draws candles side by side, without gaps for nights and weekends.
      xaxis: { gridcolor: GRID, rangeslider: { visible: false }, type: "category", nticks: 8, tickangle: 0 },
      yaxis: { domain: [0.26, 1], gridcolor: GRID, side: "right", tickformat: ",.2f" },
      yaxis2: { domain: [0, 0.2], gridcolor: GRID, side: "right", tickformat: ".2s" },
    }), CONFIG);
  }

  const DRAW = { equity: equity, candles: candles };

  function drawAll(root) {
    if (!window.Plotly) return;
    (root || document).querySelectorAll("[data-chart]").forEach(function (el) {
      const source = document.getElementById(el.dataset.source);
      const draw = DRAW[el.dataset.chart];
      if (!source || !draw) return;
      try {
        draw(el, JSON.parse(source.textContent));
        el.dataset.drawn = "true";
      } catch (error) {
        el.textContent = "The chart could not be drawn.";
      }
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  else drawAll();
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.detail.elt); });
})();
