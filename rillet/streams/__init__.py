"""rillet.streams: stateful stream processing over rillet topics (docs/streams.md).

    from rillet.streams import App, serdes

    app = App("wordcount", {"bootstrap.servers": "127.0.0.1:9092"})
    counts = (app.stream("text", value_serde=serdes.String)
              .flat_map_values(str.split)
              .group_by(lambda _key, word: word, key_serde=serdes.String)
              .count(store="counts"))
    counts.to_stream().to("word-counts", value_serde=serdes.Long)
    app.run()
"""

from . import serdes
from .app import App
from .errors import StreamsError

__all__ = ["App", "StreamsError", "serdes"]
