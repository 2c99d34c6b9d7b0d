// Character counters for textareas with a maxlength: <span data-counter-for="<textarea id>">.
// Delegated listeners, so forms swapped in by htmx keep working without re-binding.
(function () {
  function update(counter) {
    var field = document.getElementById(counter.dataset.counterFor);
    if (!field) return;
    var max = parseInt(field.getAttribute("maxlength") || "0", 10);
    counter.textContent = field.value.length;
    counter.classList.toggle("over", max > 0 && field.value.length > max * 0.95);
  }
  function updateAll() {
    document.querySelectorAll("[data-counter-for]").forEach(update);
  }
  document.addEventListener("input", function (event) {
    if (!event.target.id) return;
    document.querySelectorAll('[data-counter-for="' + event.target.id + '"]').forEach(update);
  });
  document.addEventListener("DOMContentLoaded", updateAll);
  document.addEventListener("htmx:afterSwap", updateAll);
})();

// The channel picker's tools (rendered hidden: without JavaScript the whole list stays as it is): a search box
// that hides the channels not matching, and "Select all" / "Clear" for the channels shown.
(function () {
  function setUp(tools) {
    if (tools.dataset.ready) return;
    var list = document.getElementById(tools.dataset.channelTools);
    if (!list) return;
    tools.dataset.ready = "1";
    var search = tools.querySelector("input[type=search]");
    var shown = tools.querySelector("[data-channels-shown]");
    list.parentNode.insertBefore(tools, list); // between the label and the list
    tools.hidden = false;

    function rows() {
      return Array.prototype.slice.call(list.children);
    }
    function filter() {
      var query = search.value.trim().toLowerCase().replace(/^#/, "");
      var count = 0;
      rows().forEach(function (row) {
        var match = !query || row.textContent.toLowerCase().indexOf(query) !== -1;
        row.hidden = !match;
        if (match) count += 1;
      });
      shown.textContent = query ? count + " of " + rows().length + " shown" : "";
    }
    search.addEventListener("input", filter);
    search.addEventListener("keydown", function (event) {
      if (event.key === "Enter") event.preventDefault(); // filtering, not saving
    });
    tools.addEventListener("click", function (event) {
      var which = event.target.dataset && event.target.dataset.channels;
      if (!which) return;
      rows().forEach(function (row) {
        var box = row.querySelector("input[type=checkbox]");
        if (!box || row.hidden || box.checked === (which === "all")) return;
        box.checked = which === "all";
        box.dispatchEvent(new Event("change", { bubbles: true })); // the save bar sees the edit
      });
    });
  }
  function setUpAll() {
    document.querySelectorAll("[data-channel-tools]").forEach(setUp);
  }
  document.addEventListener("DOMContentLoaded", setUpAll);
  document.addEventListener("htmx:afterSwap", setUpAll);
})();
