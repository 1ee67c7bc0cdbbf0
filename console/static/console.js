// Live updates over server-sent events: queue changes refresh the lists (at most once a
// second), a screen pop shows the ticket of the call that just reached this seat.
(function () {
  "use strict";
  var live = document.getElementById("live");
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
