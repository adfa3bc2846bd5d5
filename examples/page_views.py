"""page_views: a pipeline of your own, as a user of kappa writes one.

Views and cart adds per product in 5-minute windows sliding every minute, from the
commerce events of ``kappa produce commerce``. Run it live, then replay what the live
run read, and compare::

    kappa live --pipeline examples/page_views.py:PageViews \\
        --source kafka://127.0.0.1:9092/commerce-events --stop-after 5m
    kappa replay --manifest .kappa/runs/page_views-.../manifest.json --sink file:replay/views.jsonl
    kappa verify file:.kappa/runs/page_views-.../results.jsonl file:replay/views.jsonl

(or ``--pipeline examples.page_views:PageViews`` from the repository's root). The four
hooks are all a pipeline writes: kappa does the reading, event time, windows, panes,
lateness, dead letters, commits and sinks.
"""

from __future__ import annotations

from pathlib import Path

from kappa.pipelines.base import InvalidRecord, WindowedPipeline


class ViewsAndCarts:
    """An aggregation: create, add, merge and extract, as Beam's CombineFn has them.
    merge must not depend on order (replays combine partial accumulators in any order)."""

    def create(self):
        return 0, 0

    def add(self, acc, action):
        return acc[0] + (action == "view"), acc[1] + (action == "add_to_cart")

    def merge(self, accs):
        return sum(a[0] for a in accs), sum(a[1] for a in accs)

    def extract(self, acc):
        return acc


class PageViews(WindowedPipeline):
    name = "page_views"  #: goes into every result record (and the default run directory's name)
    input_schema = str(Path(__file__).with_name("product_view.avsc"))  #: or a built-in name: "commerce_event"
    DEFAULTS = {"window": "sliding:5m/1m", "allowed_lateness": "1m", "max_out_of_orderness": "30s"}

    def key_of(self, event: dict) -> str:
        if not event.get("product_id"):
            raise InvalidRecord("product_id is missing or empty")  # a dead letter, not a crash
        return event["product_id"]

    def value_of(self, record):
        return record.value["action"]

    def aggregation(self):
        return ViewsAndCarts()

    def values(self, acc) -> dict:
        views, carts = acc
        return {"views": views, "add_to_cart": carts}
