"""Forms of the storefront: cart changes, checkout details and search."""

from __future__ import annotations

from django import forms

from shop.cart import MAX_QUANTITY
from shop.models import Order

SEARCH_PAGE = 24  # results a search shows, and how many more each "show more" adds
SEARCH_MAX = 96


class CartChangeForm(forms.Form):
    """Add a product to the cart, or set a line's quantity (0 removes it)."""

    product = forms.IntegerField(min_value=1, widget=forms.HiddenInput)
    quantity = forms.IntegerField(min_value=0, max_value=MAX_QUANTITY, initial=1)
    # The recommendation the shopper came from, so a later purchase is attributed to it; the
    # browser's word until `recommendations.claim_recommendation` checks it (shop.views.cart_add).
    recommendation_id = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)


class CheckoutForm(forms.ModelForm):
    # One per checkout page shown: the same form sent twice names the order it placed (place_order).
    checkout_token = forms.UUIDField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Order
        fields = ["name", "email", "address", "city", "postcode"]
        labels = {"name": "Full name", "address": "Street address"}
        widgets = {
            "name": forms.TextInput(attrs={"autocomplete": "name"}),
            "email": forms.EmailInput(attrs={"autocomplete": "email"}),
            "address": forms.TextInput(attrs={"autocomplete": "street-address"}),
            "city": forms.TextInput(attrs={"autocomplete": "address-level2"}),
            "postcode": forms.TextInput(attrs={"autocomplete": "postal-code"}),
        }


class SearchForm(forms.Form):
    q = forms.CharField(max_length=200, required=False, strip=True)
    # "Show more" asks for the next SEARCH_PAGE results with the ones already shown.
    shown = forms.IntegerField(min_value=SEARCH_PAGE, max_value=SEARCH_MAX, required=False)
