/* Small page behaviours: toasts, the mobile navigation, the user menu, HTMX error feedback. */
(function () {
  "use strict";

  function toast(message, level) {
    const box = document.getElementById("toasts");
    if (!box || !message) return;
    const item = document.createElement("div");
    item.className = "toast toast-" + (level || "info");
    item.setAttribute("role", level === "error" ? "alert" : "status");
    item.textContent = message;
    box.appendChild(item);
    while (box.children.length > 4) box.removeChild(box.firstChild);
    setTimeout(function () {
      item.classList.add("leaving");
      setTimeout(function () { item.remove(); }, 300);
    }, level === "error" ? 7000 : 4500);
  }
  window.tpToast = toast;

  document.addEventListener("DOMContentLoaded", function () {
    const toggle = document.querySelector("[data-nav-toggle]");
    if (toggle) {
      toggle.addEventListener("click", function () {
        const open = document.body.classList.toggle("nav-open");
        toggle.setAttribute("aria-expanded", open ? "true" : "false");
      });
    }
  });

  // Close the user menu when clicking elsewhere or pressing Escape.
  document.addEventListener("click", function (event) {
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) {
      if (!menu.contains(event.target)) menu.removeAttribute("open");
    });
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    document.querySelectorAll("details.user-menu[open]").forEach(function (menu) { menu.removeAttribute("open"); });
    document.body.classList.remove("nav-open");
  });

  // Server-sent feedback: HX-Trigger: {"toast": {"message": "...", "level": "success"}}
  document.addEventListener("toast", function (event) {
    const detail = event.detail || {};
    toast(detail.message, detail.level);
  });

  document.addEventListener("htmx:responseError", function (event) {
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    const text = {
      403: "You are not allowed to do that (or your session expired: reload the page).",
      404: "That no longer exists.",
    }[status] || "Something went wrong (" + status + "). Please try again.";
    toast(text, "error");
  });
  document.addEventListener("htmx:sendError", function () {
    toast("The server could not be reached. Check your connection.", "error");
  });
})();

/* <select data-autosubmit> submits its form on change (account switchers, filters without HTMX). */
document.addEventListener("change", function (event) {
  const el = event.target;
  if (el instanceof HTMLElement && el.matches("[data-autosubmit]") && el.form) el.form.requestSubmit();
});
