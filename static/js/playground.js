// The playground over a WebSocket (llm/consumers.py): the answer builds up token by token, and Stop cancels it.
// Without JavaScript, or while the socket is not open, the form posts as before (htmx or a full page).
(function () {
  "use strict";
  var form = document.getElementById("playground-form");
  if (!form || !window.WebSocket) return;
  var stop = document.getElementById("playground-stop");
  var socket = null;
  var answer = null; // the element the tokens go into
  var running = false;

  function result() {
    return document.getElementById("playground-result");
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function add(parent, tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    parent.appendChild(node);
    return node;
  }

  function setRunning(value) {
    running = value;
    stop.hidden = !value;
    form.querySelector("button[type=submit]").disabled = value;
  }

  function showError(text, detail) {
    var box = add(result(), "div", "flash err");
    box.setAttribute("role", "alert");
    add(box, "p", "", text);
    if (detail) {
      var more = add(box, "details");
      add(more, "summary", "", "What the provider said");
      add(more, "pre", "provider-error", detail);
    }
  }

  function onMessage(event) {
    var data = JSON.parse(event.data);
    var section = result();
    if (data.type === "token") {
      answer.textContent += data.text;
    } else if (data.type === "done") {
      setRunning(false);
      if (data.reasoning) {
        var thinking = add(section, "details", "reasoning");
        add(thinking, "summary", "", "The model's thinking (" + data.reasoning_tokens + " tokens)");
        add(thinking, "div", "", data.reasoning);
      }
      add(section, "p", "muted", data.model_name + " · " + data.input_tokens + " + " + data.output_tokens +
        " tokens · $" + data.cost_usd + " · " + data.latency_ms + " ms");
    } else if (data.type === "stopped") {
      setRunning(false);
      add(section, "p", "muted", "Stopped.");
    } else if (data.type === "error") {
      setRunning(false);
      showError(data.error, data.error_detail);
    } else if (data.type === "invalid") {
      setRunning(false);
      var lines = [];
      Object.keys(data.errors).forEach(function (name) { lines.push(name + ": " + data.errors[name].join(" ")); });
      showError(lines.join(" "));
    }
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + location.host + form.dataset.socket);
    socket.addEventListener("open", function () { form.dataset.live = "on"; });
    socket.addEventListener("message", onMessage);
    socket.addEventListener("close", function () {
      socket = null;
      delete form.dataset.live;
      if (running) {
        setRunning(false);
        showError("The connection was lost before the answer was complete. Run it again.");
      }
    });
  }

  // In the capture phase, before htmx's own listener on the form: the socket takes the submit when it is open.
  document.addEventListener("submit", function (event) {
    if (event.target !== form || !socket || socket.readyState !== WebSocket.OPEN || running) return;
    event.preventDefault();
    event.stopPropagation();
    var fields = new FormData(form);
    var section = result();
    clear(section);
    add(section, "h2", "", "Answer");
    answer = add(section, "div", "answer streaming", "");
    setRunning(true);
    socket.send(JSON.stringify({
      type: "run",
      message: fields.get("message") || "",
      system_prompt: fields.get("system_prompt") || "",
      model: fields.get("model") || ""
    }));
  }, true);

  stop.addEventListener("click", function () {
    if (socket && running) socket.send(JSON.stringify({ type: "stop" }));
  });

  connect();
})();
