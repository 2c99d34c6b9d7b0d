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
