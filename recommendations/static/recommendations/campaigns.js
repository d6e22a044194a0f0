/*
 * Campaign views and clicks for the {% personalized_campaigns %} block, sent through the
 * recommendations beacon (include recommendations/beacon.js on the page as well).
 *
 *   <article data-campaign-id="12" data-rec-id="{{ match.recommendation_id }}">...</article>
 *
 * A campaign_view is sent once per element when half of it is visible, a campaign_click on a
 * click inside it (but on a <summary>, which opens its "why"); both carry {"campaign": "<id>"} in their context, which is how impression
 * caps and campaign statistics find them, and the recommendation id of the campaigns shown,
 * without which the server does not count a browser's view towards a cap.
 */
(function () {
  "use strict";

  // The block may appear more than once on a page: listen once.
  if (window.recommendationsCampaigns) {
    return;
  }
  window.recommendationsCampaigns = true;
  var seen = typeof WeakSet === "function" ? new WeakSet() : null;

  function send(element, type, immediately) {
    var beacon = window.recommendationsBeacon;
    if (!beacon) {
      return;
    }
    beacon.track(
      {
        event_type: type,
        recommendation_id: element.getAttribute("data-rec-id") || "",
        context: { campaign: element.getAttribute("data-campaign-id") }
      },
      immediately
    );
  }

  function viewed(element) {
    if (seen) {
      if (seen.has(element)) {
        return;
      }
      seen.add(element);
    }
    send(element, "campaign_view", false);
  }

  function start() {
    var elements = document.querySelectorAll("[data-campaign-id]");
    if ("IntersectionObserver" in window) {
      var observer = new IntersectionObserver(
        function (entries) {
          entries.forEach(function (entry) {
            if (entry.isIntersecting) {
              viewed(entry.target);
              observer.unobserve(entry.target);
            }
          });
        },
        { threshold: 0.5 }
      );
      for (var i = 0; i < elements.length; i++) {
        observer.observe(elements[i]);
      }
    } else {
      for (var j = 0; j < elements.length; j++) {
        viewed(elements[j]);
      }
    }
    document.addEventListener(
      "click",
      function (e) {
        var element = e.target && e.target.closest ? e.target.closest("[data-campaign-id]") : null;
        // Opening a disclosure inside it (the "Why am I seeing this?" <summary>) is not a click on
        // the campaign: it leads nowhere and would count towards the campaign's click-through.
        if (element && !e.target.closest("summary")) {
          send(element, "campaign_click", true);
        }
      },
      true
    );
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
