// Countersign web inbox: live updates. The server sends an event whenever a request changes;
// each part of the page marked data-live-src is fetched again (as HTML the server rendered and
// escaped) when the change concerns it. Without JavaScript the pages work; they just do not move.
"use strict";
(function () {
  const parts = Array.from(document.querySelectorAll("[data-live-src]"));
  if (parts.length === 0 || !window.EventSource) return;
  const status = document.querySelector("[data-live-status]");

  async function refresh(part) {
    try {
      const response = await fetch(part.dataset.liveSrc, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.status === 401) { window.location.reload(); return; }
      if (!response.ok) return;
      const html = await response.text();
      if (part.innerHTML !== html) part.innerHTML = html;
    } catch (_) { /* the next event or reconnection fetches again */ }
  }

  function refreshAll(id) {
    for (const part of parts) {
      if (!id || !part.dataset.liveId || part.dataset.liveId === id) refresh(part);
    }
  }

  const events = new EventSource("/inbox/events");
  events.addEventListener("change", (e) => {
    let id = null;
    try { id = JSON.parse(e.data).id; } catch (_) { /* refresh everything */ }
    refreshAll(id);
  });
  events.addEventListener("resync", () => refreshAll(null));
  // (Re)connected: anything may have changed while the stream was down.
  events.addEventListener("open", () => {
    document.body.dataset.live = "connected";
    if (status) status.classList.remove("offline");
    refreshAll(null);
  });
  events.addEventListener("error", () => {
    document.body.dataset.live = "reconnecting";
    if (status) status.classList.add("offline");
  });
})();
