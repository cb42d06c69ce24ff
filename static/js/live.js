/* Live updates: one WebSocket per page to /ws/events/.
 *
 * Every server event is re-dispatched on document as a CustomEvent ("tp:event" with the whole
 * message, and "tp:<type>", e.g. "tp:order.updated", with its data) and mapped to HTMX trigger
 * names fired on <body>. Partials opt in with hx-trigger="orders-changed from:body", so a page
 * refreshes exactly the tables it shows. After a reconnect every partial is refreshed once,
 * because events sent while offline are lost.
 */
(function () {
  "use strict";

  const TRIGGERS = {
    "order.updated": ["orders-changed"],
    "position.updated": ["positions-changed", "account-changed"],
    "trade.closed": ["trades-changed", "positions-changed", "account-changed"],
    "account.status": ["account-changed"],
    "notification": ["notifications-changed"],
    "notifications.read": ["notifications-changed"],
  };
  const ALL_TRIGGERS = ["orders-changed", "positions-changed", "trades-changed", "account-changed", "notifications-changed"];
  const PING_MS = 25000;
  const MAX_DELAY_MS = 30000;

  let socket = null;
  let attempt = 0;
  let pingTimer = null;
  let retryTimer = null;
  let connectedOnce = false;
  let stopped = false;

  const state = { status: "connecting", received: 0 };
  window.tpLive = state;

  function setStatus(status, label) {
    state.status = status;
    document.documentElement.dataset.live = status;
    const el = document.getElementById("live-status");
    if (!el) return;
    el.dataset.state = status;
    const text = label || { live: "Live", connecting: "Connecting…", offline: "Offline" }[status];
    const labelEl = el.querySelector(".live-label");
    if (labelEl) labelEl.textContent = text;
    el.title = status === "live" ? "Live updates are on" : text;
  }

  function fire(name, detail) {
    if (window.htmx) window.htmx.trigger(document.body, name, detail || {});
    else document.body.dispatchEvent(new CustomEvent(name, { detail: detail || {}, bubbles: true }));
  }

  function trim(value) {
    const text = String(value == null ? "" : value);
    return text.indexOf(".") >= 0 ? text.replace(/\.?0+$/, "") : text;
  }

  function announce(message) {
    const data = message.data || {};
    if (!window.tpToast) return;
    if (message.type === "order.updated") {
      const what = [data.side, trim(data.quantity), data.symbol].filter(Boolean).join(" ");
      if (data.status === "filled") {
        window.tpToast("Filled: " + what + (data.average_fill_price ? " @ " + trim(data.average_fill_price) : ""), "success");
      } else if (data.status === "rejected") {
        window.tpToast("Rejected: " + what + (data.reject_reason ? " (" + data.reject_reason + ")" : ""), "error");
      }
    } else if (message.type === "trade.closed") {
      window.tpToast("Trade closed: " + data.symbol + ", net " + trim(data.net_pnl), Number(data.net_pnl) >= 0 ? "success" : "warning");
    } else if (message.type === "account.status") {
      window.tpToast("Account " + data.account + " is now " + data.status, data.status === "halted" ? "error" : "info");
    } else if (message.type === "notification" && data.title) {
      window.tpToast(data.title, data.level || "info");
    }
  }

  // The header bell's unread badge follows the count the server sends with each change.
  function setBadge(count) {
    const badge = document.getElementById("notif-badge");
    if (!badge || typeof count !== "number") return;
    badge.dataset.count = String(count);
    badge.textContent = count > 99 ? "99+" : String(count);
    badge.hidden = count <= 0;
  }

  function handle(message) {
    if (!message || typeof message.type !== "string") return;
    if (message.type === "hello" || message.type === "pong") return;
    state.received += 1;
    document.dispatchEvent(new CustomEvent("tp:event", { detail: message }));
    document.dispatchEvent(new CustomEvent("tp:" + message.type, { detail: message.data }));
    (TRIGGERS[message.type] || []).forEach(function (name) { fire(name, message.data); });
    if (message.data && (message.type === "notification" || message.type === "notifications.read")) {
      setBadge(message.data.unread_count);
    }
    announce(message);
  }

  function url() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/ws/events/";
  }

  function connect() {
    clearTimeout(retryTimer);
    if (stopped) return;
    setStatus("connecting");
    try {
      socket = new WebSocket(url());
    } catch (error) {
      scheduleReconnect();
      return;
    }
    socket.addEventListener("open", function () {
      attempt = 0;
      setStatus("live");
      clearInterval(pingTimer);
      pingTimer = setInterval(function () {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
      }, PING_MS);
      if (connectedOnce) ALL_TRIGGERS.forEach(function (name) { fire(name, { reconnected: true }); });
      connectedOnce = true;
    });
    socket.addEventListener("message", function (event) {
      let message;
      try { message = JSON.parse(event.data); } catch (error) { return; }
      handle(message);
    });
    socket.addEventListener("close", function (event) {
      clearInterval(pingTimer);
      socket = null;
      if (event.code === 4401) {  // the server says we are not signed in: do not hammer it
        setStatus("offline", "Signed out");
        return;
      }
      scheduleReconnect();
    });
    socket.addEventListener("error", function () {
      if (socket) socket.close();
    });
  }

  function scheduleReconnect() {
    if (stopped) return;
    // Exponential backoff with jitter: 1s, 2s, 4s ... capped at 30s.
    const base = Math.min(MAX_DELAY_MS, 1000 * Math.pow(2, attempt));
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    attempt += 1;
    setStatus("offline", "Reconnecting…");
    retryTimer = setTimeout(connect, delay);
  }

  window.addEventListener("online", function () {
    if (!socket) { attempt = 0; connect(); }
  });
  window.addEventListener("pagehide", function () {
    stopped = true;
    if (socket) socket.close(1000);
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) { stopped = false; attempt = 0; connect(); }
  });

  // The notification dropdown closes like the user menu: click elsewhere or press Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.notif-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.notif-menu[open]").forEach(function (menu) { menu.removeAttribute("open"); });
  });

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", connect);
  else connect();
})();
