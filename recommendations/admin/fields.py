"""Form fields of the admin's boxes of JSON."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.forms.fields import InvalidJSONInput


class JSONBoxField(forms.JSONField):
    """A JSON box that answers JSON nested too deeply with a field error. Python's json module
    recurses once per level and raises RecursionError past the interpreter's limit (about a
    thousand: a few kilobytes pasted into the box), which Django's field does not catch: the
    form was a 500 (the API's parser answers the same body with a 400, `api/parsers.py`)."""

    default_error_messages = {
        "nested": "This JSON is nested too deeply to read: enter an object a few levels deep.",
    }

    def to_python(self, value: Any) -> Any:
        try:
            return super().to_python(value)
        except RecursionError:
            raise ValidationError(self.error_messages["nested"], code="nested") from None

    def bound_data(self, data: Any, initial: Any) -> Any:
        # The form shown again with its errors reads the box once more.
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)
