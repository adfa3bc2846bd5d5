"""Spark 3.5.7 (pyspark, ``local[2]``): per (merchant, 1-minute event-time window) count and exact
decimal total, as a batch read of the Kafka source with startingOffsets/endingOffsets.

The connector (spark-sql-kafka-0-10) and spark-avro come from Maven Central into
``bench/.venvs/spark-jars`` (bench/run: ``mvn dependency:copy-dependencies`` of this folder's
pom.xml); the jars pyspark already ships are not passed again. ``from_avro`` decodes the value
minus its 5-byte Confluent header (the amount is Avro's decimal(18, 2), summed exactly as a
decimal(28, 2)). A batch query has no watermark (Spark ignores ``withWatermark`` in batch), so
Spark counts every record, as the loop does.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import write_totals  # noqa: E402
from common import parse_args  # noqa: E402

JARS = Path(__file__).resolve().parents[2] / ".venvs" / "spark-jars"


def main() -> None:
    args = parse_args(__doc__)
    import pyspark
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.avro.functions import from_avro

    shipped = {j.name for j in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    jars = [str(j) for j in sorted(JARS.glob("*.jar")) if j.name not in shipped]
    if not any("spark-sql-kafka" in j for j in jars):
        raise SystemExit(f"no spark-sql-kafka jar in {JARS}: run bench/run, which fetches it with mvn")
    spark = (SparkSession.builder.master("local[2]").appName("bench-spark")
             .config("spark.jars", ",".join(jars))
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "4")
             .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "2g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    parts = range(args.partitions)
    raw = (spark.read.format("kafka")
           .option("kafka.bootstrap.servers", args.bootstrap)
           .option("subscribe", args.topic)
           .option("startingOffsets", json.dumps({args.topic: {str(p): 0 for p in parts}}))
           .option("endingOffsets", json.dumps({args.topic: {str(p): args.stop for p in parts}}))
           .load())
    schema = Path(args.schema).read_text()
    payments = raw.select(from_avro(F.expr("substring(value, 6, length(value) - 5)"), schema,
                                    {"mode": "PERMISSIVE"}).alias("p"))
    per_minute = (payments.groupBy(F.col("p.merchant.name").alias("merchant"), F.window("p.timestamp", "1 minute"))
                  .agg(F.count(F.lit(1)).alias("n"), F.sum("p.amount").alias("total"))
                  .select("merchant", F.unix_millis(F.col("window.start")).alias("start"), "n", "total"))
    rows = per_minute.collect()  # undecodable records or no merchant: the null merchant's rows
    totals = {(r["merchant"], r["start"]): (r["n"], r["total"]) for r in rows if r["merchant"] is not None}
    invalid = sum(r["n"] for r in rows if r["merchant"] is None)
    events = invalid + sum(c for c, _ in totals.values())
    spark.stop()
    write_totals(args.out, totals, events, invalid, late=None)


if __name__ == "__main__":
    main()
