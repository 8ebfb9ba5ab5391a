"""``Tally`` (the recorder's plain-number histogram) exports what prometheus_client's ``Histogram`` would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.samples import Sample

from mesg_pusher.collectors import BATCH_BUCKETS, LATENCY_BUCKETS, Tally


def samples(family_samples: list[Sample]) -> dict[str, float]:
    return {
        f"{s.name}{sorted(s.labels.items())}": s.value
        for s in family_samples
        if not s.name.endswith("_created")
    }


def test_tally_matches_prometheus_histogram_bounds_included() -> None:
    for bounds in (LATENCY_BUCKETS, BATCH_BUCKETS):
        # Values on a bound (le is inclusive), between bounds, below the first and above the last.
        values = [*bounds, 0.0, 0.0011, 0.3, 7.0, 10.0, 31.0, 10_000.0]
        reference = Histogram("h", "h", buckets=bounds, registry=CollectorRegistry())
        tally = Tally(bounds)
        for value in values:
            reference.observe(value)
            tally.observe(value)
        ours = HistogramMetricFamily("h", "h")
        ours.add_metric([], tally.buckets(), tally.sum)
        expected = samples(next(iter(reference.collect())).samples)
        assert samples(ours.samples) == expected
