// Live updates over server-sent events: queue changes refresh the lists (at most once a
// second), a screen pop shows the ticket of the call that just reached this seat.
// Buttons name what they do in data-action; the handlers are here rather than in onclick
// attributes, because the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  var actions = {
    "close-pop": function () { document.getElementById("pop").innerHTML = ""; },
    "print": function () { window.print(); },
    "play-next": function (button) {
      var audio = button.nextElementSibling;
      audio.hidden = false;
      audio.play();
    }
  };
  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-action]");
    if (button && actions[button.dataset.action]) {
      actions[button.dataset.action](button);
    }
  });

  var live = document.getElementById("live");
  if (!live) return; // pages without the live marker (the printable report) stay offline
  var refreshTimer = null;
  function refreshQueues() {
    if (refreshTimer || !document.getElementById("queues")) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      htmx.trigger("#queues", "refresh");
    }, 1000);
  }
  function connect() {
    var source = new EventSource("/events");
    source.onopen = function () { live.className = "live on"; };
    source.onerror = function () { live.className = "live off"; };
    source.addEventListener("queue", refreshQueues);
    source.addEventListener("pop", function (event) {
      var data = JSON.parse(event.data);
      window.lastPop = { ticket: data.ticket, receivedMs: Date.now(), sentMs: data.sent_ms };
      htmx.ajax("GET", "/tickets/" + encodeURIComponent(data.ticket) + "/pop",
                { target: "#pop", swap: "innerHTML" });
      refreshQueues();
    });
  }
  connect();
})();
