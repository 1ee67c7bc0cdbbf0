// Live updates over server-sent events: queue changes refresh the lists (at most once a
// second), a screen pop shows the ticket of the call that just reached this seat; upload
// forms check the size limit they state.
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
    source.onerror = function () {
      live.className = "live off";
      // The browser retries a dropped stream by itself, but not a refused one (429: this
      // login has its streams open in other windows); try again once one may have closed.
      if (source.readyState === EventSource.CLOSED) setTimeout(connect, 30000);
    };
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

  // Upload forms state their limit (data-max-bytes): say so before sending a file that
  // the server would refuse only after the whole upload.
  document.addEventListener("submit", function (event) {
    var inputs = event.target.querySelectorAll("input[type=file][data-max-bytes]");
    for (var i = 0; i < inputs.length; i++) {
      var limit = Number(inputs[i].dataset.maxBytes);
      var file = inputs[i].files && inputs[i].files[0];
      if (file && file.size > limit) {
        event.preventDefault();
        alert("文件过大：上限 " + Math.round(limit / 1000000) + " MB，所选文件约 "
              + (file.size / 1000000).toFixed(1) + " MB。请压缩或拆分后再上传。");
        return;
      }
    }
  });
})();
