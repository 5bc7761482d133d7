"""coldtier's metrics and log records (DESIGN.md §12); the instruments are listed in :mod:`coldtier._observe`.

Metrics go through the OpenTelemetry API (``pip install 'coldtier[otel]'``);
without it they cost one ``is None`` test per call.  By default they go to
OpenTelemetry's global meter provider, looked up at coldtier's first call::

    from opentelemetry.sdk.metrics import MeterProvider
    import coldtier.observe

    coldtier.observe.configure(meter_provider=MeterProvider(metric_readers=[reader]))

``archived_through=True`` (or ``COLDTIER_METRICS_TENANTS=1`` in the
environment) adds the per-tenant gauge ``coldtier.archived_through``: the end
(Unix seconds) of the latest window each tenant archived successfully, the
signal for a lag alert.  It is the only instrument that names tenants, and it
names at most ``max_tenants`` of them.

Log records go to the logger ``coldtier.calls`` (quiet unless you configure
logging): INFO per successful ``archive``, WARNING/ERROR per failed call, the
fields in ``extra=``.

For backends: :func:`retried` and :func:`refused` count what a store's client
retried or a store refused, as the store sees it.
"""

from __future__ import annotations

from ._observe import configure, refused, retried

__all__ = ["configure", "refused", "retried"]
