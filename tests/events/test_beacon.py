"""The JS beacon: served as a static file, and what it sends is accepted by the endpoint.

The beacon runs in Node with a minimal stand-in for the DOM (elements, cookies, sendBeacon,
fetch); the bodies it hands to sendBeacon and fetch are then posted to /api/events/ as a
browser would. The stand-in's fetch answers when the harness says (`respond`).
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

from recommendations.models import Event, ServedRecommendation
from tests.events.conftest import CSRF_SECRET

BEACON = Path(finders.find("recommendations/beacon.js"))

DOM = r"""
const fs = require("fs");
const [source, token, viewed, shown] = process.argv.slice(1);  // node -e: no script path in argv
const sent = [], handlers = {}, timers = [];
const attrs = (map) => (name) => (name in map ? map[name] : null);
const has = (map) => (name) => name in map;
const products = JSON.parse(shown).map((id, i) => {
  const map = { "data-product-id": id, "data-rec-position": String(i + 1) };
  return { getAttribute: attrs(map), hasAttribute: has(map) };
});
const container = {
  getAttribute: attrs({ "data-rec-id": "rec-42", "data-rec-kind": "similar" }),
  querySelectorAll: (sel) => (sel === "[data-product-id]" ? products : []),
};
const ancestors = (p) => ({ "[data-rec-impression]": container, "[data-product-id], [data-store-id]": p });
products.forEach((p) => { p.closest = (sel) => ancestors(p)[sel] || null; });  // no <summary> above
globalThis.window = globalThis;
globalThis.location = { pathname: "/product/blue-mug/" };
globalThis.document = {
  currentScript: { getAttribute: attrs({ "data-csrf-token": token }) },
  cookie: "",
  referrer: "https://search.example/",
  readyState: "complete",
  visibilityState: "visible",
  body: { getAttribute: attrs({ "data-rec-view": "product", "data-product-id": viewed }) },
  querySelector: (sel) => (sel === "[data-rec-view]" ? document.body : null),
  querySelectorAll: (sel) => (sel === "[data-rec-impression]" ? [container] : []),
  addEventListener: (type, fn) => { handlers[type] = fn; },
};
globalThis.addEventListener = (type, fn) => { handlers[type] = fn; };
globalThis.setTimeout = (fn) => { timers.push(fn); return timers.length; };
globalThis.clearTimeout = (id) => { if (id) timers[id - 1] = null; };
const runTimers = () => timers.forEach((fn, i) => { timers[i] = null; if (fn) fn(); });
globalThis.Blob = class { constructor(parts, options) { this.body = parts.join(""); this.type = options.type; } };
globalThis.navigator = {
  sendBeacon: (url, blob) => { sent.push({ via: "beacon", url, type: blob.type, body: blob.body }); return true; },
};
const waiting = [];
globalThis.fetch = (url, init) => {
  const { "Content-Type": type, "X-CSRFToken": token } = init.headers;
  sent.push({ via: "fetch", url, type, token, keepalive: init.keepalive, body: init.body });
  return new Promise((resolve) => waiting.push(resolve));
};
// The server answers the requests sent so far; then their callbacks run.
const respond = (ok) => { waiting.splice(0).forEach((resolve) => resolve({ ok })); return new Promise(setImmediate); };
const via = () => sent.map((request) => request.via);
eval(fs.readFileSync(source, "utf8"));
"""
HARNESS = (
    DOM
    + r"""
(async () => {
  handlers.click({ target: products[1] });    // a click on a recommended product...
  runTimers();                                 // ...is sent once its handlers have run
  await respond(true);
  window.recommendationsBeacon.track({ event_type: "favourite", product_id: products[2].getAttribute("data-product-id") });
  document.visibilityState = "hidden";
  handlers.visibilitychange();                 // leaving the page flushes the rest
  process.stdout.write(JSON.stringify(sent));
})();
"""
)
# A new visitor's first page: the impressions' batch goes after 2 seconds, a click a moment
# later, before the first batch's response has set the session cookie.
FIRST_PAGE_HARNESS = (
    DOM
    + r"""
(async () => {
  const steps = {};
  runTimers();                                 // the view and impression, 2 s after the page showed
  handlers.click({ target: products[1] });
  runTimers();
  steps.clickedBeforeTheResponse = via();
  await respond(false);                        // a failed answer set no cookie: the click goes alone
  steps.afterAFailedResponse = via();
  window.recommendationsBeacon.track({ event_type: "favourite", product_id: "2" }, true);
  runTimers();
  steps.whileTheClickIsOnItsWay = via();
  await respond(true);                         // this one set the cookie: sendBeacon from now on
  steps.afterTheResponse = via();
  window.recommendationsBeacon.track({ event_type: "favourite", product_id: "3" }, true);
  runTimers();
  steps.later = via();
  process.stdout.write(JSON.stringify(steps));
})();
"""
)
# The page hides while the first batch is on its way: what waits cannot wait any longer.
HIDDEN_PAGE_HARNESS = (
    DOM
    + r"""
runTimers();
handlers.click({ target: products[1] });
runTimers();
handlers.pagehide();
process.stdout.write(JSON.stringify(via()));
"""
)
# A click on a button in a recommended card that submits the card's form (add to cart).
SUBMIT_HARNESS = (
    DOM
    + r"""
handlers.click({ target: products[1] });
if (handlers.submit) handlers.submit({ defaultPrevented: false });
runTimers();
const beforeTheResponse = sent.length;
handlers.pagehide();                           // the form's response replaces the page
process.stdout.write(JSON.stringify({ beforeTheResponse, after: sent.length }));
"""
)


@pytest.mark.django_db
def test_beacon_is_served_as_a_static_file():
    response = Client().get("/static/recommendations/beacon.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"navigator.sendBeacon" in body and b"csrf_token" in body


def run_beacon(harness, viewed="1", shown=("2", "3", "4")):
    """What `harness` prints after running the beacon with the stand-in DOM."""
    result = subprocess.run(
        ["node", "-e", harness, str(BEACON), CSRF_SECRET, viewed, json.dumps(list(shown))],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.django_db
@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the beacon")
def test_what_the_beacon_sends_is_accepted(browser, catalogue, shopper):
    shown = [str(p.pk) for p in catalogue[:3]]
    beacons = run_beacon(HARNESS, str(catalogue[0].pk), shown)
    assert [b["url"] for b in beacons] == ["/api/events/"] * 2
    # The page's first batch by fetch (its response may set the session cookie), then sendBeacon.
    assert [(b["via"], b["type"]) for b in beacons] == [
        ("fetch", "application/json"),
        ("beacon", "text/plain;charset=UTF-8"),
    ]
    assert beacons[0]["keepalive"] and beacons[0]["token"] == CSRF_SECRET

    browser.force_login(shopper)
    # The block the beacon reports was served to this shopper, so its clicks may credit it.
    ServedRecommendation.objects.create(
        id="rec-42", kind="similar", source="test", user=shopper, product_ids=shown
    )
    for beacon in beacons:
        headers = {"HTTP_X_CSRFTOKEN": beacon["token"]} if beacon["via"] == "fetch" else {}
        response = browser.post(beacon["url"], beacon["body"], content_type=beacon["type"], **headers)
        assert response.status_code == 200, response.content

    events = {e.event_type: e for e in Event.objects.all()}
    assert set(events) == {"view", "impression", "click", "favourite"}
    assert events["view"].product_id == str(catalogue[0].pk)
    assert events["view"].context["page"] == "/product/blue-mug/"
    assert events["view"].context["referrer"] == "https://search.example/"
    assert events["impression"].context["products"] == shown
    assert events["impression"].recommendation_id == "rec-42"
    assert (events["click"].product_id, events["click"].recommendation_id) == (shown[1], "rec-42")
    assert (events["click"].context["kind"], events["click"].context["position"]) == ("similar", 2)
    assert events["impression"].context["kind"] == "similar"
    assert all(e.user_id == shopper.pk for e in events.values())


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the beacon")
def test_a_click_that_submits_a_form_is_sent_after_the_forms_response():
    """So that it carries the session cookie a new visitor's form response sets (the browser
    test `test_a_new_visitors_first_click_is_an_add_to_cart_in_the_session_of_its_impression_and_click`)."""
    assert run_beacon(SUBMIT_HARNESS) == {"beforeTheResponse": 0, "after": 1}


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the beacon")
def test_a_pages_batches_wait_for_the_first_response_so_a_new_visitor_gets_one_session():
    """Sent without a cookie, each would start its own session, the click in one without its
    list (the browser test `test_a_new_visitors_campaign_click_is_in_the_session_of_its_view`)."""
    assert run_beacon(FIRST_PAGE_HARNESS) == {
        "clickedBeforeTheResponse": ["fetch"],
        "afterAFailedResponse": ["fetch", "fetch"],
        "whileTheClickIsOnItsWay": ["fetch", "fetch"],
        "afterTheResponse": ["fetch", "fetch", "beacon"],
        "later": ["fetch", "fetch", "beacon", "beacon"],
    }


@pytest.mark.skipif(shutil.which("node") is None, reason="needs Node.js to run the beacon")
def test_a_page_that_hides_sends_what_waits_for_a_response_at_once():
    assert run_beacon(HIDDEN_PAGE_HARNESS) == ["fetch", "beacon"]
