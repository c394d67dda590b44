"""A small Quix Streams application, written as for Kafka: numbers from an input topic,
the even ones multiplied by 10 to an output topic. Run unchanged against rillet's KAFKA
listener by tests/integration/test_kafka_quix.py:

    python app.py BOOTSTRAP GUARANTEE GROUP INPUT OUTPUT STATE_DIR COUNT
"""

import json
import sys

from quixstreams import Application

bootstrap, guarantee, group, source, sink, state_dir, count = sys.argv[1:8]
app = Application(broker_address=bootstrap, consumer_group=group,
                  auto_offset_reset="earliest", processing_guarantee=guarantee,
                  commit_interval=0.5, state_dir=state_dir, loglevel="WARNING")
numbers = app.topic(source, value_deserializer="json")
output = app.topic(sink, value_serializer="json")
sdf = app.dataframe(numbers)
sdf = sdf.filter(lambda v: v["n"] % 2 == 0).apply(lambda v: {"n": v["n"] * 10})
sdf.to_topic(output)
with app.get_producer() as producer:  # the input (its topic created by the app on first use)
    for n in range(2 * int(count)):
        producer.produce(source, key=str(n), value=json.dumps({"n": n}))
app.run(count=int(count), timeout=60)  # stops once `count` records reached the output
print("processed", flush=True)
