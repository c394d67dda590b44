"""``rillet dump-log`` (kafka-dump-log.sh): a segment file's batches as stored."""

from __future__ import annotations

from click.testing import CliRunner
from rillet.logstore import batch as B
from rillet.logstore.batch import BatchBuilder, Codec
from rillet.logstore.config import LogConfig
from rillet.logstore.log import PartitionLog
from rillet.logstore.producer_state import ProducerStateManager
from rillet.logstore.validator import append_validated

from rillet.cli.main import cli

NOW = 1_700_000_000_000


def _segment(tmp_path, **config):
    log = PartitionLog.open(tmp_path / "t-0", LogConfig(**config), NOW)
    ps = ProducerStateManager()
    for first in (0, 2):
        b = BatchBuilder(Codec.GZIP, producer_id=3, producer_epoch=0, base_sequence=first)
        b.append(NOW - 5, b"k%d" % first, b"v%d" % first)
        b.append(NOW - 4, None, None)
        assert append_validated(log, ps, b.build(), 0, NOW + first).error == "NONE"
    log.close()
    return next((tmp_path / "t-0").glob("*.log"))


def test_dump_log_shows_codec_stamp_producer_fields_and_records(tmp_path) -> None:
    path = _segment(tmp_path, compression_type="zstd", message_timestamp_type="LogAppendTime")
    out = CliRunner().invoke(cli, ["dump-log", "--print-data-log", str(path)])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == f"Dumping {path}"
    assert lines[1].startswith("baseOffset: 0 lastOffset: 1 count: 2 baseSequence: 0 "
                               "lastSequence: 1 producerId: 3 producerEpoch: 0 "
                               "partitionLeaderEpoch: 0 isTransactional: false ")
    assert f"LogAppendTime: {NOW} " in lines[1] and "compresscodec: zstd" in lines[1]
    assert lines[1].endswith("isvalid: true")
    assert lines[2].startswith(f"| offset: 0 LogAppendTime: {NOW} keySize: 2 valueSize: 2 ")
    assert lines[2].endswith("key: k0 payload: v0")
    assert lines[3].endswith("key: null payload: null")
    assert "baseOffset: 2 lastOffset: 3" in lines[4] and f"LogAppendTime: {NOW + 2} " in lines[4]


def test_dump_log_flags_a_damaged_batch_and_a_cut_tail(tmp_path) -> None:
    path = _segment(tmp_path)  # CreateTime, the producer's gzip
    data = bytearray(path.read_bytes())
    first = B.read_header(data).length
    data[first - 1] ^= 0xFF  # the first batch's last payload byte
    path.write_bytes(bytes(data[:-10]))  # and the second batch cut short
    out = CliRunner().invoke(cli, ["dump-log", str(path)])
    assert out.exit_code == 1
    lines = out.output.splitlines()
    assert "CreateTime: " in lines[1] and "compresscodec: gzip" in lines[1]
    assert lines[1].endswith("isvalid: false")
    assert lines[2] == (f"Found {len(data) - 10 - first} invalid bytes at position {first}: "
                        f"truncated batch: {len(data) - 10 - first} of {len(data) - first} bytes")
