"""The peer shop's URLs: django-oscar-api under /api/ (all the bench uses)."""

from django.urls import include, path

urlpatterns = [path("api/", include("oscarapi.urls"))]
