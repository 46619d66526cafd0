"""Reading /metrics in the tests: the samples of Prometheus's text format, by name and labels."""
from prometheus_client.parser import text_string_to_metric_families


def parse(text):
    """``{(sample name, frozenset of label items): value}`` of a /metrics page."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def value(samples, name, **labels):
    """One sample's value (0 when it is not there yet: a counter not yet moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    """The sum of every sample of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(found for (sample, items), found in samples.items()
               if sample == name and wanted <= items)
