// The review page's keyboard: 1, 2, t, s and u press the matching button,
// d toggles the diff, ? the cheat sheet. Nothing here reads the data being
// reviewed; it only clicks the page's own buttons.
"use strict";

(function () {
  let submitting = false;

  function typing(target) {
    return target instanceof HTMLElement &&
      (target.isContentEditable || target.closest("input, textarea, select") !== null);
  }

  function toggleDialog(dialog) {
    if (dialog.open) {
      dialog.close();
    } else {
      dialog.showModal();
    }
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) {
      return;
    }
    if (typing(event.target)) {
      if (event.key === "Escape") {
        event.target.blur();
      }
      return;
    }
    const dialog = document.getElementById("shortcuts");
    if (event.key === "?") {
      event.preventDefault();
      if (dialog) {
        toggleDialog(dialog);
      }
      return;
    }
    if (dialog && dialog.open) {
      return;
    }
    const key = event.key.length === 1 ? event.key.toLowerCase() : "";
    if (key === "d") {
      const diff = document.getElementById("diff");
      if (diff) {
        event.preventDefault();
        diff.open = !diff.open;
      }
      return;
    }
    const button = key ? document.querySelector('button[data-key="' + key + '"]') : null;
    if (!button || button.type !== "submit" || submitting) {
      return;
    }
    event.preventDefault();
    submitting = true;
    button.click();
  }

  function init() {
    document.addEventListener("keydown", onKey);
    document.querySelectorAll("[data-opens]").forEach(function (opener) {
      opener.addEventListener("click", function () {
        const dialog = document.getElementById(opener.dataset.opens);
        if (dialog) {
          toggleDialog(dialog);
        }
      });
    });
    // A page restored from the back/forward cache may be answered again.
    window.addEventListener("pageshow", function () {
      submitting = false;
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
