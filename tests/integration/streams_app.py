"""The word count the streams integration tests run as a separate process, through the CLI:

    rillet streams run tests/integration/streams_app.py:app -c bootstrap.servers=... \\
        -c processing.guarantee=exactly_once -c state.dir=...

Reads ``lines`` (String values), counts words in the SQLite store ``counts`` and writes each
new count to ``word-counts`` (String key, Long value). ``memory_app``: the same with the
store in memory (``...streams_app.py:memory_app``)."""

from rillet.streams import App, serdes
from rillet.streams.dsl import Materialized

app = App("streams-it")
(app.stream("lines", value_serde=serdes.String)
 .flat_map_values(str.split)
 .group_by(lambda _key, word: word, key_serde=serdes.String)
 .count(store="counts")
 .to_stream()
 .to("word-counts", key_serde=serdes.String, value_serde=serdes.Long))

memory_app = App("streams-it")
(memory_app.stream("lines", value_serde=serdes.String)
 .flat_map_values(str.split)
 .group_by(lambda _key, word: word, key_serde=serdes.String)
 .count(store=Materialized("counts", in_memory=True))
 .to_stream()
 .to("word-counts", key_serde=serdes.String, value_serde=serdes.Long))
