"""The shop's Content-Security-Policy (shop.csp) and the templates it allows.

What it blocks in a real browser is checked in `tests/browser` (every test there fails on a
blocked script or style); these run without one.
"""

import re
from pathlib import Path

import pytest
from django.http import HttpResponse

from shop.csp import ContentSecurityPolicyMiddleware

ROOT = Path(__file__).resolve().parents[2]
STRICT = (
    "default-src 'self'; img-src 'self' data: https:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
# What the policy refuses to run: event handler attributes, inline scripts, inline styles.
HANDLER = re.compile(r"<[^>]*\son[a-z]+\s*=", re.IGNORECASE)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style|<[^>]*\sstyle\s*=", re.IGNORECASE)


@pytest.mark.django_db
def test_every_page_gets_the_policy_and_only_the_admin_and_api_docs_relax_styles(client):
    assert client.get("/")["Content-Security-Policy"] == STRICT
    assert client.get("/accounts/login/")["Content-Security-Policy"] == STRICT
    admin = client.get("/admin/login/")["Content-Security-Policy"]
    assert admin == STRICT.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")
    for docs in ("/api/docs/", "/api/redoc/"):
        policy = client.get(docs)["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "style-src 'self' 'unsafe-inline'" in policy, docs
    assert "script-src 'self';" in client.get("/api/docs/?script=")["Content-Security-Policy"]


def test_a_views_own_policy_stands(rf):
    own = "default-src 'self'; frame-src https://pay.example"

    def view(request):
        response = HttpResponse("paying")
        response["Content-Security-Policy"] = own
        return response

    middleware = ContentSecurityPolicyMiddleware(view)
    assert middleware(rf.get("/checkout/"))["Content-Security-Policy"] == own
    assert (
        ContentSecurityPolicyMiddleware(lambda request: HttpResponse())(rf.get("/checkout/"))[
            "Content-Security-Policy"
        ]
        == STRICT
    )


def templates(*folders: str) -> list[Path]:
    return [path for folder in folders for path in sorted((ROOT / folder).rglob("*.html"))]


@pytest.mark.parametrize(
    "path",
    templates("templates", "recommendations/templates/recommendations"),
    ids=lambda path: str(path.relative_to(ROOT)),
)
def test_storefront_templates_have_no_inline_script_handler_or_style(path):
    html = path.read_text()
    for what, pattern in (
        ("event handler", HANDLER),
        ("inline script", INLINE_SCRIPT),
        ("style", INLINE_STYLE),
    ):
        assert not pattern.search(html), f"{what} in {path.name}: the Content-Security-Policy blocks it"


@pytest.mark.parametrize(
    "path", templates("recommendations/templates/admin"), ids=lambda path: str(path.relative_to(ROOT))
)
def test_admin_templates_have_no_inline_script_or_handler(path):
    html = path.read_text()
    assert not HANDLER.search(html) and not INLINE_SCRIPT.search(html), path.name
