// Feedback where the user looks, on every page (loaded by base.html). No inline code anywhere: the CSP forbids it.
// - Toasts in #toasts: the server sends them with an HX-Trigger header, {"parley:toast": {"level", "text"}};
//   failed htmx requests (5xx, network, CSRF, 403/404) get one here too, since htmx itself shows nothing.
// - Forms marked data-track-changes: unsaved-changes state in their .savebar, a warning before leaving with
//   unsaved edits, and a draft in sessionStorage so that edits survive a login forced by an expired session.
//   Drafts are the logged-in user's (<body data-user>), last an hour, and go at logout: a shared browser never
//   shows one person's edits to the next.
// - The members page's role <select> posts as soon as it changes: a cancelled confirmation puts it back.
(function () {
  "use strict";
  if (window.Parley) return; // loaded twice: one set of listeners is enough

  var DRAFT_PREFIX = "parley:draft:";
  var DRAFT_MAX_AGE = 60 * 60 * 1000; // ms: long enough to log in again, short enough to be forgotten
  var OK_SECONDS = 5;
  var MAX_TOASTS = 4;
  var baselines = new WeakMap(); // form -> its values as the server rendered them
  var leaving = false; // a navigation we started (login redirect, "Discard mine"): no leave warning

  // --- Toasts -------------------------------------------------------------------------------------------------
  function toastRegion() {
    var region = document.getElementById("toasts");
    if (!region) {
      region = document.createElement("div");
      region.id = "toasts";
      region.className = "toasts";
      region.setAttribute("role", "status");
      region.setAttribute("aria-live", "polite");
      document.body.appendChild(region);
    }
    return region;
  }

  function toast(level, text) {
    if (!text) return;
    var region = toastRegion();
    var item = document.createElement("div");
    item.className = "toast " + (level === "ok" || level === "warn" ? level : "err");
    var message = document.createElement("span");
    message.textContent = text;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "link toast-close"; // .link: a plain button on every page
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { item.remove(); });
    item.appendChild(message);
    item.appendChild(close);
    region.appendChild(item);
    while (region.children.length > MAX_TOASTS) region.firstElementChild.remove();
    // Successes go by themselves; a failure stays until dismissed, so it cannot vanish unread.
    if (item.classList.contains("ok")) setTimeout(function () { item.remove(); }, OK_SECONDS * 1000);
  }

  document.addEventListener("parley:toast", function (event) {
    toast(event.detail && event.detail.level, event.detail && event.detail.text);
  });

  // --- htmx failures ------------------------------------------------------------------------------------------
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.getResponseHeader("HX-Trigger")) return; // the server explained it in its own toast
    if (xhr.status >= 500) {
      toast("err", "Something went wrong on our side; nothing was saved. Try again in a moment.");
    } else if (xhr.status === 403 && xhr.getResponseHeader("X-Parley-Error") === "csrf") {
      toast("err", "Your session changed (you logged in or out elsewhere); reload the page. Nothing was saved.");
    } else if (xhr.status === 403) {
      toast("err", "Your role does not allow this any more; reload the page. Nothing was saved.");
    } else if (xhr.status === 404) {
      toast("err", "This no longer exists; reload the page.");
    } else {
      toast("err", "The request was refused (" + xhr.status + "); reload the page and try again.");
    }
  });
  document.addEventListener("htmx:sendError", function () {
    toast("err", "Could not reach Parley; check your connection. Nothing was saved.");
  });
  document.addEventListener("htmx:timeout", function () {
    toast("err", "Parley took too long to answer; nothing may have been saved. Try again.");
  });

  // --- Forms with unsaved changes -----------------------------------------------------------------------------
  function values(form) {
    var pairs = [];
    new FormData(form).forEach(function (value, name) {
      if (name !== "csrfmiddlewaretoken" && typeof value === "string") pairs.push([name, value]);
    });
    return pairs;
  }

  function isDirty(form) {
    return form.hasAttribute("data-unsaved") || JSON.stringify(values(form)) !== baselines.get(form);
  }

  function refresh(form) {
    var dirty = isDirty(form);
    form.classList.toggle("is-dirty", dirty);
    var state = form.querySelector("[data-savebar-state]");
    if (state && (form.hasAttribute("data-edited") || !state.textContent.trim())) {
      var label = document.createElement("span");
      label.className = dirty ? "dirty" : "clean";
      label.textContent = dirty ? "Unsaved changes" : "All changes saved";
      state.replaceChildren(label);
    }
    // Save is enabled with something to save; never while htmx has it disabled for a running request.
    form.querySelectorAll(".savebar button[type=submit]").forEach(function (button) {
      if (!button.hasAttribute("data-disabled-by-htmx")) button.disabled = !dirty;
    });
  }

  function currentUser() {
    return document.body.getAttribute("data-user") || "";
  }

  // The user's draft for this page; null when logged out (no draft is kept for nobody).
  function draftKey() {
    var user = currentUser();
    return user ? DRAFT_PREFIX + user + ":" + location.pathname : null;
  }

  function saveDraft(form) {
    var key = draftKey();
    if (!key) return;
    try {
      var draft = { form: form.id, user: currentUser(), saved: Date.now(), values: values(form) };
      sessionStorage.setItem(key, JSON.stringify(draft));
    } catch (e) { /* storage full or disabled: the edits stay only in the page */ }
  }

  function clearDraft() {
    var key = draftKey();
    try { if (key) sessionStorage.removeItem(key); } catch (e) { /* disabled storage */ }
  }

  function fresh(draft) {
    var age = draft && typeof draft.saved === "number" ? Date.now() - draft.saved : Infinity;
    return age >= 0 && age < DRAFT_MAX_AGE;
  }

  // Drop the stale drafts and, once someone is logged in, everyone else's; with everyone=true all of them (at
  // logout). Logged out (the login page of an expired session) the user's draft waits for them.
  function forgetDrafts(everyone) {
    try {
      var user = currentUser();
      for (var i = sessionStorage.length - 1; i >= 0; i--) {
        var key = sessionStorage.key(i);
        if (!key || key.indexOf(DRAFT_PREFIX) !== 0) continue;
        var draft = null;
        try { draft = JSON.parse(sessionStorage.getItem(key)); } catch (e) { /* unreadable: dropped */ }
        var theirs = user && !(draft && draft.user === user && key.indexOf(DRAFT_PREFIX + user + ":") === 0);
        if (everyone || theirs || !fresh(draft)) sessionStorage.removeItem(key);
      }
    } catch (e) { /* disabled storage: there are no drafts */ }
  }

  function readDraft(form) {
    var key = draftKey();
    if (!key) return null;
    try {
      var draft = JSON.parse(sessionStorage.getItem(key) || "null");
      var usable = draft && draft.user === currentUser() && fresh(draft);
      return usable && draft.form === form.id && Array.isArray(draft.values) ? draft.values : null;
    } catch (e) {
      return null;
    }
  }

  function restore(form, pairs) {
    var byName = {};
    pairs.forEach(function (pair) { (byName[pair[0]] = byName[pair[0]] || []).push(pair[1]); });
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name || field.name === "csrfmiddlewaretoken" || field.type === "submit") return;
      var wanted = byName[field.name] || [];
      var changed = false;
      if (field.type === "checkbox" || field.type === "radio") {
        var checked = wanted.indexOf(field.value) !== -1;
        changed = field.checked !== checked;
        field.checked = checked;
      } else if (field.tagName === "SELECT" && field.multiple) {
        Array.prototype.forEach.call(field.options, function (option) {
          option.selected = wanted.indexOf(option.value) !== -1;
        });
        changed = true;
      } else if (wanted.length) {
        var value = wanted.shift(); // several fields of one name take their values in order
        changed = field.value !== value;
        field.value = value;
      }
      if (changed) field.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }

  function track(form) {
    if (baselines.has(form)) return;
    baselines.set(form, JSON.stringify(values(form)));
    refresh(form);
  }

  function trackAll(root) {
    var forms = [];
    if (root.matches && root.matches("form[data-track-changes]")) forms.push(root);
    root.querySelectorAll && root.querySelectorAll("form[data-track-changes]").forEach(function (f) { forms.push(f); });
    forms.forEach(track);
    document.body.classList.toggle("has-savebar", !!document.querySelector("form[data-track-changes] .savebar"));
  }

  function onEdit(event) {
    var form = event.target.form || (event.target.closest && event.target.closest("form"));
    if (!form || !baselines.has(form)) return;
    form.setAttribute("data-edited", "");
    refresh(form);
  }
  document.addEventListener("input", onEdit);
  document.addEventListener("change", onEdit);

  function tracked(element) {
    return element && element.matches && element.matches("form[data-track-changes]");
  }

  // Before a tracked form is sent, keep its values: if the answer is a redirect to the login page, they are
  // restored when the user lands back here. Any other answer leaves the edits in the page, so the draft goes
  // (after a lost connection it stays, and a reload brings the edits back).
  document.addEventListener("htmx:beforeRequest", function (event) {
    if (tracked(event.detail.elt)) saveDraft(event.detail.elt);
  });
  document.addEventListener("htmx:beforeOnLoad", function (event) {
    if (event.detail.xhr.getResponseHeader("HX-Redirect")) leaving = true;
    else if (tracked(event.detail.elt)) clearDraft();
  });
  // An answer that was not swapped in (an error) leaves the form as it was: re-check Save against the edits.
  document.addEventListener("htmx:afterRequest", function () {
    document.querySelectorAll("form[data-track-changes]").forEach(function (form) {
      if (baselines.has(form)) refresh(form);
    });
  });

  document.addEventListener("click", function (event) {
    var discard = event.target.closest && event.target.closest("[data-discard]");
    if (discard) {
      clearDraft();
      leaving = true;
    }
  });

  // Logging out forgets every draft in this tab, whoever's: the next person at this browser starts clean.
  document.addEventListener("submit", function (event) {
    if (event.target.matches && event.target.matches("form[data-logout]")) forgetDrafts(true);
  });

  // --- Role selects that post on change -----------------------------------------------------------------------
  // htmx asks its hx-confirm question itself and, on "Cancel", just sends nothing: the select would keep showing a
  // role the member does not have. Ask here instead and put the select back on "Cancel".
  function resetSelects(form) {
    form.querySelectorAll("select").forEach(function (select) {
      Array.prototype.forEach.call(select.options, function (option) { option.selected = option.defaultSelected; });
    });
  }

  document.addEventListener("htmx:confirm", function (event) {
    var form = event.detail.elt;
    if (!form.matches || !form.matches("form.role-change") || !event.detail.question) return;
    event.preventDefault();
    if (window.confirm(event.detail.question)) event.detail.issueRequest(true);
    else resetSelects(form);
  });
  // A refused change (an error is not swapped in) leaves the select showing a role that was not saved, too.
  document.addEventListener("htmx:afterRequest", function (event) {
    var form = event.detail.elt;
    if (!event.detail.successful && form.matches && form.matches("form.role-change")) resetSelects(form);
  });

  window.addEventListener("beforeunload", function (event) {
    if (leaving) return;
    var dirty = Array.prototype.some.call(document.querySelectorAll("form[data-track-changes]"), isDirty);
    if (dirty) {
      event.preventDefault();
      event.returnValue = ""; // older browsers need a value to ask
    }
  });

  function start() {
    forgetDrafts(false);
    trackAll(document);
    document.querySelectorAll("form[data-track-changes]").forEach(function (form) {
      var draft = readDraft(form);
      if (!draft) return;
      clearDraft();
      restore(form, draft);
      form.setAttribute("data-unsaved", "");
      form.setAttribute("data-edited", "");
      refresh(form);
      toast("warn", "Your unsaved changes were restored. Save them when you are ready.");
    });
  }

  // Content swapped in by htmx (a saved or refused form) is tracked afresh.
  document.addEventListener("htmx:load", function (event) {
    if (document.readyState !== "loading") trackAll(event.detail.elt);
  });
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();

  window.Parley = { toast: toast };
})();
