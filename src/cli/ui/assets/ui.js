// snap ui: the only script. On the timeline it asks the server every few
// seconds whether the snapshots changed (a backup finished, a forget ran)
// and reloads the page when they did. Every page works without it.
"use strict";
(function () {
  const timeline = document.getElementById("timeline");
  if (!timeline) return;
  const seen = timeline.dataset.snapshots + "/" + timeline.dataset.latest;
  async function poll() {
    try {
      const answer = await fetch("/api/state", { credentials: "same-origin", cache: "no-store" });
      if (answer.ok) {
        const state = await answer.json();
        if (state.snapshots + "/" + (state.latest || "") !== seen) {
          window.location.reload();
          return;
        }
      }
    } catch (e) {
      // The server is gone or busy: try again later.
    }
    window.setTimeout(poll, 5000);
  }
  window.setTimeout(poll, 5000);
})();
