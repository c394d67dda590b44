"""``rillet delete-records`` (kafka-delete-records.sh): delete the records below an offset.

    rillet delete-records --topic orders --partition 0 --offset 1200
    rillet delete-records --offset-json-file plan.json     # Kafka's file format:
    {"version": 1, "partitions": [{"topic": "orders", "partition": 0, "offset": 1200}]}

An offset of -1 deletes everything consumers can read (up to the high watermark).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from rillet.cli.topic import _admin, admin_options


def _plan_from_file(path: Path) -> dict[tuple[str, int], int]:
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise click.BadParameter(f"cannot read {path}: {e.strerror or e}",
                                 param_hint="--offset-json-file") from None
    except ValueError as e:
        raise click.BadParameter(f"{path} is not JSON: {e}",
                                 param_hint="--offset-json-file") from None
    entries = doc.get("partitions") if isinstance(doc, dict) else None
    if not isinstance(entries, list) or not entries:
        raise click.BadParameter(
            f'{path}: expected {{"partitions": [{{"topic": T, "partition": P, "offset": O}}, '
            '...]}', param_hint="--offset-json-file")
    plan: dict[tuple[str, int], int] = {}
    for i, e in enumerate(entries):
        ok = (isinstance(e, dict) and isinstance(e.get("topic"), str) and e["topic"]
              and _is_int(e.get("partition")) and e["partition"] >= 0
              and _is_int(e.get("offset")) and e["offset"] >= -1)
        if not ok:
            raise click.BadParameter(
                f"{path}: partitions[{i}] = {json.dumps(e)}: needs a topic, a partition >= 0 "
                "and an offset >= -1", param_hint="--offset-json-file")
        key = (e["topic"], e["partition"])
        if key in plan:
            raise click.BadParameter(f"{path}: {key[0]}-{key[1]} is named twice",
                                     param_hint="--offset-json-file")
        plan[key] = e["offset"]
    return plan


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@click.command("delete-records")
@click.option("--topic", "-t", help="The topic (with --partition and --offset).")
@click.option("--partition", "-p", type=click.IntRange(0), help="The partition.")
@click.option("--offset", "-o", type=click.IntRange(-1),
              help="Delete every record below this offset (-1: up to the high watermark).")
@click.option("--offset-json-file", type=click.Path(path_type=Path, dir_okay=False),
              help="kafka-delete-records.sh's JSON: several partitions at once.")
@admin_options
def delete_records(topic, partition, offset, offset_json_file, bootstrap, timeout_ms) -> None:
    """Delete the records below an offset: the partition's log start moves there, and
    consumers reading from the earliest offset start at it."""
    single = (topic, partition, offset)
    if offset_json_file is not None:
        if any(v is not None for v in single):
            raise click.UsageError("give --offset-json-file or --topic/--partition/--offset, "
                                   "not both")
        plan = _plan_from_file(offset_json_file)
    elif all(v is not None for v in single):
        plan = {(topic, partition): offset}
    else:
        raise click.UsageError("give --topic, --partition and --offset (or --offset-json-file)")
    from rillet.errors import RilletError

    click.echo("Executing records delete operation")
    with _admin(bootstrap) as admin:
        results = admin.delete_records(plan, raise_errors=False)
    click.echo("Records delete operation completed:")
    failed = False
    for tp, result in results.items():
        if isinstance(result, RilletError):
            failed = True
            click.echo(f"partition: {tp.topic}-{tp.partition}\terror: {result}", err=True)
        else:
            click.echo(f"partition: {tp.topic}-{tp.partition}\tlow_watermark: {result}")
    sys.exit(1 if failed else 0)
