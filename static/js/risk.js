/* The risk page: live refresh and the Plotly heat maps.
 *
 * live.js re-dispatches every server event on document as "tp:<type>". A "risk.event" (a new,
 * escalated or acknowledged risk event) becomes the HTMX trigger "risk-changed" on <body>, which
 * the events list and the limits listen to; "account.status" already fires "account-changed".
 *
 * Heat maps are drawn from the JSON the overview embeds (json_script "risk-chart-data"):
 *   <div class="chart" data-risk-chart="exposure|correlation" data-source="risk-chart-data">
 * and redrawn whenever HTMX swaps the overview in again.
 */
(function () {
  "use strict";

  const FONT = { family: "ui-sans-serif, system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#334155" };
  const CONFIG = { displaylogo: false, responsive: true, displayModeBar: false };
  // Shorts red, longs green, white at zero.
  const EXPOSURE_SCALE = [[0, "#b91c1c"], [0.5, "#f8fafc"], [1, "#047857"]];
  // Negative correlation blue (diversifies), positive red (concentrates).
  const CORRELATION_SCALE = [[0, "#1d4ed8"], [0.5, "#f8fafc"], [1, "#b91c1c"]];

  function layout(extra) {
    return Object.assign({
      font: FONT,
      margin: { l: 96, r: 16, t: 8, b: 56 },
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      xaxis: { type: "category", tickangle: -30, automargin: true },
      yaxis: { type: "category", automargin: true },
    }, extra || {});
  }

  function exposure(el, charts) {
    const data = charts.exposure;
    const values = [];
    data.z.forEach(function (row) { row.forEach(function (v) { if (v !== null) values.push(Math.abs(v)); }); });
    const span = Math.max.apply(null, values.concat([1]));
    window.Plotly.newPlot(el, [{
      type: "heatmap",
      x: data.symbols,
      y: data.sectors,
      z: data.z,
      zmin: -span,
      zmax: span,
      zmid: 0,
      colorscale: EXPOSURE_SCALE,
      xgap: 2,
      ygap: 2,
      hoverongaps: false,
      // Blank cells (a position's other sectors) stay blank: no "%" without a number.
      text: data.z.map(function (row) {
        return row.map(function (v) { return v === null ? "" : v.toFixed(1) + "%"; });
      }),
      texttemplate: "%{text}",
      hovertemplate: "%{x} · %{y}<br>%{z:.2f}% of equity<extra></extra>",
      colorbar: { title: { text: "% equity", side: "right" }, thickness: 10 },
    }], layout({ yaxis: { type: "category", automargin: true, autorange: "reversed" } }), CONFIG);
  }

  function correlation(el, charts) {
    const data = charts.correlation;
    const symbols = data.symbols;
    window.Plotly.newPlot(el, [{
      type: "heatmap",
      x: symbols,
      y: symbols,
      z: data.matrix,
      zmin: -1,
      zmax: 1,
      zmid: 0,
      colorscale: CORRELATION_SCALE,
      xgap: 1,
      ygap: 1,
      hoverongaps: false,
      text: data.matrix.map(function (row) {
        return row.map(function (v) { return v === null ? "n/a" : v.toFixed(2); });
      }),
      texttemplate: "%{text}",
      hovertemplate: "%{y} / %{x}: %{z:.2f}<extra></extra>",
      colorbar: { thickness: 10 },
    }], layout({ yaxis: { type: "category", automargin: true, autorange: "reversed" } }), CONFIG);
  }

  const DRAW = { exposure: exposure, correlation: correlation };

  function drawAll(root) {
    if (!window.Plotly) return;
    const scope = root && root.querySelectorAll ? root : document;
    const charts = Array.prototype.slice.call(scope.querySelectorAll("[data-risk-chart]"));
    if (scope.matches && scope.matches("[data-risk-chart]")) charts.push(scope);
    charts.forEach(function (el) {
      const source = document.getElementById(el.dataset.source);
      const draw = DRAW[el.dataset.riskChart];
      if (!source || !draw) return;
      try {
        draw(el, JSON.parse(source.textContent));
        el.dataset.drawn = "true";
      } catch (error) {
        if (window.console) window.console.error("risk chart", error);
        el.textContent = "The chart could not be drawn.";
      }
    });
  }

  function fire(name, detail) {
    if (window.htmx) window.htmx.trigger(document.body, name, detail || {});
  }

  document.addEventListener("tp:risk.event", function (event) {
    const data = event.detail || {};
    fire("risk-changed", data);
    if (window.tpToast && data.severity && !data.acknowledged) {
      const level = data.severity === "warning" ? "warning" : "error";
      window.tpToast("Risk " + data.severity + ": " + (data.message || data.code || ""), level);
    }
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", function () { drawAll(); });
  else drawAll();
  document.addEventListener("htmx:afterSettle", function (event) { drawAll(event.detail.elt); });
})();
