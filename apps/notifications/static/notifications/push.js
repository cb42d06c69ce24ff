/* Preferences page: subscribe this browser to web push (service worker + VAPID key) and
 * register the subscription with the API; or unsubscribe it. */
(function () {
  "use strict";

  function csrf() {
    const body = document.body.getAttribute("hx-headers");
    try { return JSON.parse(body)["X-CSRFToken"]; } catch (error) { return ""; }
  }

  function keyBytes(base64url) {
    const padding = "=".repeat((4 - (base64url.length % 4)) % 4);
    const raw = atob((base64url + padding).replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
  }

  function post(url, payload) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
      body: JSON.stringify(payload),
    }).then(function (response) {
      if (!response.ok) throw new Error("The server answered " + response.status);
      return response;
    });
  }

  function setup(box) {
    const status = box.querySelector("[data-push-status]");
    const enable = box.querySelector("[data-push-enable]");
    const disable = box.querySelector("[data-push-disable]");
    if (!enable || !disable) return;
    const say = function (text) { if (status) status.textContent = text; };
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      say("This browser does not support web push.");
      return;
    }
    let registration = null;
    navigator.serviceWorker.register(box.dataset.swUrl, { scope: "/notifications/" }).then(function (reg) {
      registration = reg;
      return reg.pushManager.getSubscription();
    }).then(function (subscription) {
      enable.hidden = !!subscription;
      disable.hidden = !subscription;
    }).catch(function (error) { say("Web push is unavailable here: " + error.message); });

    enable.addEventListener("click", function () {
      if (!registration) return;
      Notification.requestPermission().then(function (permission) {
        if (permission !== "granted") throw new Error("notifications are blocked for this site");
        return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(box.dataset.vapidKey) });
      }).then(function (subscription) {
        return post(box.dataset.subscribeUrl, Object.assign(subscription.toJSON(), { user_agent: navigator.userAgent }));
      }).then(function () {
        say("This browser now gets push notifications.");
        document.body.dispatchEvent(new CustomEvent("notifications-changed", { bubbles: true }));
        window.location.reload();
      }).catch(function (error) { say("Could not enable push: " + error.message); });
    });

    disable.addEventListener("click", function () {
      if (!registration) return;
      registration.pushManager.getSubscription().then(function (subscription) {
        if (!subscription) return null;
        const endpoint = subscription.endpoint;
        return subscription.unsubscribe().then(function () { return post(box.dataset.unsubscribeUrl, { endpoint: endpoint }); });
      }).then(function () { window.location.reload(); })
        .catch(function (error) { say("Could not disable push: " + error.message); });
    });
  }

  function scan() {
    const box = document.getElementById("push-devices");
    if (!box || box.dataset.ready || box.dataset.pushAvailable !== "true") return;
    box.dataset.ready = "true";
    setup(box);
  }
  // On load, and again when HTMX swaps the device list in.
  document.addEventListener("DOMContentLoaded", scan);
  document.addEventListener("htmx:load", scan);
})();
