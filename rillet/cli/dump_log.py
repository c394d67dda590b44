"""``rillet dump-log FILE...`` (kafka-dump-log.sh --files): the batches of segment files as
stored, read straight from disk with the batch format (logstore/batch.py), for an operator
who wants to see what a broker wrote: codec, timestamp type and stamp, producer fields,
digest validity; ``--print-data-log`` adds each record."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rillet.logstore import batch as B
from rillet.logstore.errors import CorruptBatchError


def batch_line(header: B.BatchHeader, position: int, valid: bool) -> str:
    """One batch as kafka-dump-log.sh prints it (rillet's digest in place of the CRC)."""
    last_seq = -1 if header.base_sequence < 0 else (
        header.base_sequence + header.last_offset_delta) & 0x7FFFFFFF
    stamp = "LogAppendTime" if header.is_log_append_time else "CreateTime"
    return (f"baseOffset: {header.base_offset} lastOffset: {header.last_offset} "
            f"count: {header.record_count} baseSequence: {header.base_sequence} "
            f"lastSequence: {last_seq} producerId: {header.producer_id} "
            f"producerEpoch: {header.producer_epoch} "
            f"partitionLeaderEpoch: {header.leader_epoch} "
            f"isTransactional: {str(header.is_transactional).lower()} "
            f"isControl: {str(header.is_control).lower()} position: {position} "
            f"{stamp}: {header.max_timestamp} size: {header.length} magic: {header.magic} "
            f"compresscodec: {header.codec.name.lower()} digest: {header.digest[:8].hex()} "
            f"isvalid: {str(valid).lower()}")


def dump(data: bytes, print_data: bool = False):
    """Lines for the batches of one segment file's bytes; a damaged or cut batch ends the
    walk with a line saying where (the rest cannot be framed)."""
    mv = memoryview(data)
    pos = 0
    while pos < len(mv):
        try:
            header = B.read_header(mv, pos)
            end = pos + header.length
            if end > len(mv):
                raise CorruptBatchError(f"truncated batch: {len(mv) - pos} of {header.length} "
                                        "bytes", pos)
        except CorruptBatchError as e:
            yield f"Found {len(mv) - pos} invalid bytes at position {pos}: {e.reason}"
            return
        try:
            B.validate(mv[pos:end])
            valid = True
        except CorruptBatchError:
            valid = False
        yield batch_line(header, pos, valid)
        if print_data and valid and not header.is_control:
            cols = B.decode_columns(mv[pos:end], validate=False)
            stamp = "LogAppendTime" if header.is_log_append_time else "CreateTime"
            for off, ts, key, value, hs in zip(*cols, strict=True):
                yield (f"| offset: {off} {stamp}: {ts} "
                       f"keySize: {-1 if key is None else len(key)} "
                       f"valueSize: {-1 if value is None else len(value)} "
                       f"headerKeys: [{','.join(h[0] for h in hs or ())}] "
                       f"key: {_show(key)} payload: {_show(value)}")
        pos = end


def _show(data: bytes | None) -> str:
    if data is None:
        return "null"
    try:
        return data.decode()
    except UnicodeDecodeError:
        return data.hex()


@click.command("dump-log")
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--print-data-log", is_flag=True, help="Print each record too.")
def dump_log(files, print_data_log) -> None:
    """The record batches of segment FILES (a partition's NNN.log), as stored."""
    bad = False
    for path in files:
        click.echo(f"Dumping {path}")
        for line in dump(path.read_bytes(), print_data_log):
            bad |= line.startswith("Found ") or line.endswith("isvalid: false")
            click.echo(line)
    if bad:
        sys.exit(1)
