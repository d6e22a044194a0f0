"""The JS beacon: served as a static file, and what it sends is accepted by the endpoint.

The beacon runs in Node with a minimal stand-in for the DOM (elements, cookies, sendBeacon);
the bodies it hands to sendBeacon are then posted to /api/events/ as a browser would.
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
products.forEach((p) => { p.closest = (sel) => (sel === "[data-rec-impression]" ? container : p); });
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
globalThis.navigator = { sendBeacon: (url, blob) => { sent.push({ url, type: blob.type, body: blob.body }); return true; } };
eval(fs.readFileSync(source, "utf8"));
"""
HARNESS = (
    DOM
    + r"""
handlers.click({ target: products[1] });      // a click on a recommended product...
runTimers();                                   // ...is sent once its handlers have run
document.visibilityState = "hidden";
handlers.visibilitychange();                   // leaving the page flushes the rest
process.stdout.write(JSON.stringify(sent));
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
    assert [b["url"] for b in beacons] == ["/api/events/"]
    assert beacons[0]["type"].startswith("text/plain")

    browser.force_login(shopper)
    # The block the beacon reports was served to this shopper, so its clicks may credit it.
    ServedRecommendation.objects.create(
        id="rec-42", kind="similar", source="test", user=shopper, product_ids=shown
    )
    for beacon in beacons:
        response = browser.post(beacon["url"], beacon["body"], content_type=beacon["type"])
        assert response.status_code == 200, response.content

    events = {e.event_type: e for e in Event.objects.all()}
    assert set(events) == {"view", "impression", "click"}
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
