// The console's only script: small enhancements of pages that work without it.
// - A sign-in link (<console>/sign-in#token=...) signs in at once: the token moves from the fragment, which
//   no server or log ever sees, into the form, and the fragment is removed from the address bar and history.
// - A form with data-confirm asks before it is sent.
// - An element with data-refresh="<ms>" (a backfill's progress) is fetched again from the same page at
//   that interval and replaced in place, until the fresh copy no longer asks for it.
"use strict";

// Also when only the fragment changes (a link opened on the sign-in page already shown): no new page loads.
function signInFromFragment() {
  const signIn = document.getElementById("sign-in");
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (signIn && fragment.has("token")) {
    signIn.querySelector("textarea[name=token]").value = fragment.get("token");
    history.replaceState(null, "", window.location.pathname + window.location.search);
    signIn.submit();
  }
}
window.addEventListener("hashchange", signInFromFragment);

document.addEventListener("DOMContentLoaded", () => {
  signInFromFragment();
  for (const element of document.querySelectorAll("[data-refresh][id]")) {
    refresh(element.id, Number(element.dataset.refresh));
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) {
        event.preventDefault();
      }
    });
  }
});

function refresh(id, interval) {
  window.setTimeout(async () => {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) {
        return;
      }
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById(id);
      const current = document.getElementById(id);
      if (fresh && current) {
        current.replaceWith(document.importNode(fresh, true));
        if (fresh.dataset.refresh) {
          refresh(id, interval);
        }
      }
    } catch (error) {
      // Offline or signed out: the page stays as it is; reloading shows why.
    }
  }, interval);
}
