"""Integrations with observability tools, each in its own module with its own extra.

- ``resilient_routing.contrib.otel``: ``OpenTelemetryListener``, traces and metrics through
  ``opentelemetry-api`` (``pip install 'resilient-routing[otel]'``).
- ``resilient_routing.contrib.prometheus``: ``PrometheusListener``, metrics through
  ``prometheus-client`` (``pip install 'resilient-routing[prometheus]'``).

Importing ``resilient_routing`` or this package imports neither library; only the module you
import does.
"""
