"""page_views as a plain Beam PTransform: the same counts as examples/page_views.py, with
Beam's own sliding windows and CombinePerKey instead of kappa's engine.

A transform like this runs in replays (kappa reads, decodes, stamps event time, writes
results and dead letters; the transform windows by itself)::

    kappa replay --pipeline examples/beam_page_views.py:BeamPageViews \\
        --source kafka://127.0.0.1:9092/commerce-events --sink file:out/views.jsonl

In a replay Beam keeps every record (a batch has no late data), where kappa's engine
would dead-letter the ones later than the watermark bound allows: on a log without such
records the two examples give the same results, ids included (tests/test_user_pipeline.py).
"""

from __future__ import annotations

from pathlib import Path

import apache_beam as beam
from apache_beam.transforms.window import SlidingWindows



class ViewsAndCartsFn(beam.CombineFn):
    def create_accumulator(self):
        return 0, 0

    def add_input(self, acc, action):
        return acc[0] + (action == "view"), acc[1] + (action == "add_to_cart")

    def merge_accumulators(self, accs):
        accs = list(accs)
        return sum(a[0] for a in accs), sum(a[1] for a in accs)

    def extract_output(self, acc):
        return acc


class BeamPageViews(beam.PTransform):
    name = "page_views"  #: in every result; the same as PageViews', so their ids agree
    input_schema = str(Path(__file__).with_name("product_view.avsc"))

    def expand(self, records):
        per_product = (
            records
            | "Actions" >> beam.Map(lambda r: (r.value["product_id"], r.value["action"]))
            | "Slide" >> beam.WindowInto(SlidingWindows(size=300, period=60))
            | "Count" >> beam.CombinePerKey(ViewsAndCartsFn())
        )
        return {"results": per_product | "ToResults" >> beam.ParDo(_ToResultFn())}


class _ToResultFn(beam.DoFn):
    def process(self, element, window=beam.DoFn.WindowParam):
        product, (views, carts) = element
        yield {"key": product, "window_start": window.start.micros // 1000, "window_end": window.end.micros // 1000,
               "values": {"views": views, "add_to_cart": carts}}
