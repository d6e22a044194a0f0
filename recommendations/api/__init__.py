"""The REST API (Django REST framework): events in, recommendations out."""
