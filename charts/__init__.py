"""Kubernetes manifest templates (jinja2), shipped as package data of xtrc."""
