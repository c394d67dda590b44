// kafkajs against rillet's KAFKA listener: two consumers join GROUP (kafkajs' own
// client-side assignor) and settle, COUNT keyed messages are produced to TOPIC and consumed,
// the consumers commit and leave; one JSON line: what each member was assigned, how many
// messages were consumed (and seen twice), the committed offsets as kafkajs' admin reads them.
// Usage: node group.js BOOTSTRAP TOPIC GROUP COUNT
const { Kafka, logLevel } = require("kafkajs");

const [bootstrap, topic, groupId, countArg] = process.argv.slice(2);
const count = Number(countArg);
const kafka = new Kafka({ clientId: "kafkajs-test", brokers: bootstrap.split(","),
                          logLevel: logLevel.WARN, retry: { retries: 10 } });

function settled(assigned, partitions) {
  const all = Object.values(assigned).flat();
  return Object.keys(assigned).length === 2 && all.length === partitions &&
    new Set(all).size === partitions;
}

async function until(condition, ms, what) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  const [meta] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
  const partitions = meta.partitions.length;

  // two members; the group settles (each partition assigned once) before anything is sent
  const seen = new Set();
  const assigned = {};
  let duplicates = 0;
  const consumers = [];
  for (const name of ["m1", "m2"]) {
    // short fetch waits: kafkajs rejoins and leaves only between fetches
    const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 500,
                                      rebalanceTimeout: 10000, maxWaitTimeInMs: 200 });
    consumer.on(consumer.events.GROUP_JOIN, (e) => {
      assigned[name] = e.payload.memberAssignment[topic] || [];
    });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const v = message.value.toString();
        if (seen.has(v)) duplicates++;
        seen.add(v);
      },
    });
    consumers.push(consumer);
  }
  await until(() => settled(assigned, partitions), 60000, "the group to settle");

  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let i = 0; i < count; i++) messages.push({ key: `k${i}`, value: `v${i}` });
  await producer.send({ topic, messages });
  await producer.disconnect();
  await until(() => seen.size === count, 60000, "every message");
  const owned = JSON.parse(JSON.stringify(assigned));  // before the members leave
  for (const c of consumers) await c.disconnect();  // commits what was consumed, leaves

  const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
  await admin.disconnect();
  const committed = {};
  for (const p of offsets[0].partitions) committed[p.partition] = Number(p.offset);
  console.log(JSON.stringify({ consumed: seen.size, duplicates, assigned: owned, committed }));
}

main().catch((e) => { console.error(e); process.exit(1); });
