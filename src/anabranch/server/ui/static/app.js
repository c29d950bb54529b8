// anabranch's own page behaviour: times shown in the viewer's zone (or UTC, remembered),
// select-all for run lists, and expandable rows. Everything else is htmx.
(function () {
  "use strict";
  const UTC_KEY = "anabranch.utc";

  function useUtc() {
    return window.localStorage.getItem(UTC_KEY) === "1";
  }

  function formatTimes(root) {
    const utc = useUtc();
    const options = {
      year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", second: "2-digit",
      hourCycle: "h23", timeZoneName: "short",
    };
    if (utc) options.timeZone = "UTC";
    const format = new Intl.DateTimeFormat("en-CA", options);
    root.querySelectorAll("time[datetime]").forEach(function (element) {
      const moment = new Date(element.getAttribute("datetime"));
      if (isNaN(moment)) return;
      if (!element.title) element.title = element.getAttribute("datetime");
      // 2026-12-07 01:54:25 CET: sortable, unambiguous, and the zone always shown.
      const part = {};
      format.formatToParts(moment).forEach(function (p) { part[p.type] = p.value; });
      const clock = part.hour + ":" + part.minute + ":" + part.second;
      element.textContent = element.hasAttribute("data-clock")
        ? clock
        : part.year + "-" + part.month + "-" + part.day + " " + clock + " " + part.timeZoneName;
    });
    const name = document.getElementById("zone-name");
    if (name) {
      name.textContent = utc ? "UTC" : Intl.DateTimeFormat().resolvedOptions().timeZone;
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    formatTimes(document);
    const toggle = document.getElementById("zone-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        window.localStorage.setItem(UTC_KEY, useUtc() ? "0" : "1");
        formatTimes(document);
      });
    }
  });

  // Whether the logs tab follows new lines (its "follow" box).
  window.anabranchFollowing = function () {
    const box = document.getElementById("tail");
    return Boolean(box && box.checked);
  };

  // Whether nothing inside the element with this id has the focus: a periodic refresh waits
  // while the user types into one of its forms.
  window.anabranchNotEditing = function (id) {
    const active = document.activeElement;
    return !(active && active.closest && active.closest("#" + id) && active.matches("input, select, textarea"));
  };

  // The logs' filters go into the page's address, so the view they show is a link.
  document.addEventListener("htmx:afterRequest", function (event) {
    const form = event.detail.elt;
    if (!form.matches || !form.matches("form.log-filters")) return;
    const query = new URLSearchParams(new FormData(form));
    query.set("tab", "logs");
    window.history.replaceState(null, "", window.location.pathname + "?" + query.toString());
  });

  // A live refresh of a list keeps the runs the user selected.
  let selected = [];
  document.addEventListener("htmx:beforeSwap", function (event) {
    selected = Array.from(event.target.querySelectorAll("input[name=run]:checked"))
      .map(function (box) { return box.value; });
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    selected.forEach(function (value) {
      const box = event.target.querySelector('input[name=run][value="' + value + '"]');
      if (box) box.checked = true;
    });
    selected = [];
    formatTimes(event.target.parentNode || document);
    const lines = document.getElementById("log-lines");
    if (lines && window.anabranchFollowing()) lines.scrollTop = lines.scrollHeight;
  });

  document.addEventListener("change", function (event) {
    const box = event.target;
    if (box.matches && box.matches("[data-select-all]")) {
      const table = box.closest("table");
      table.querySelectorAll("input[name=run]").forEach(function (each) {
        each.checked = box.checked;
      });
    }
  });

  // A second click on an expand button hides what the first one loaded.
  document.addEventListener("click", function (event) {
    const button = event.target.closest && event.target.closest("[data-toggle-rows]");
    if (!button) return;
    const target = document.getElementById(button.getAttribute("data-toggle-rows"));
    if (button.getAttribute("aria-expanded") === "true") {
      event.preventDefault();
      event.stopImmediatePropagation();
      target.innerHTML = "";
      button.setAttribute("aria-expanded", "false");
      if (button.classList.contains("twisty")) button.textContent = "▸";
      else button.textContent = "show";
      return;
    }
    button.setAttribute("aria-expanded", "true");
    if (button.classList.contains("twisty")) button.textContent = "▾";
    else button.textContent = "hide";
  }, true);
})();
