"""Scrapes Switchboard's GET /metrics and parses it with the Prometheus project's own Python
parser (prometheus_client), as a Prometheus server would read it.

Usage: python metrics.py <http-url-of-/metrics>
Prints one JSON line per sample: [name, {labels}, value]. Exits non-zero when the text does not
parse or the content type is not Prometheus text.
"""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

with urllib.request.urlopen(sys.argv[1], timeout=10) as response:
    content_type = response.headers.get("Content-Type", "")
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    text = response.read().decode("utf-8")

for family in text_string_to_metric_families(text):
    for sample in family.samples:
        print(json.dumps([sample.name, sample.labels, sample.value]))
