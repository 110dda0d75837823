// A finetec-live subscriber outside Python: npm's zeromq and @msgpack/msgpack.
// Usage: node subscribe.mjs ENDPOINT COUNT [TIMEOUT_MS] [TOPICS]
// TOPICS: comma-separated topic prefixes (default "label.,segment."). Prints each
// decoded payload as one JSON line, with its topic and what a consumer reads from it
// ("decision": "class", "unknown" or "idle" for a label of schema 2, "segment" for a
// segment); exits 0 after COUNT messages, 1 on timeout or a message it cannot read.
import { decode } from "@msgpack/msgpack";
import { Subscriber } from "zeromq";

const [endpoint = "tcp://127.0.0.1:5557", countArg = "1", timeoutArg = "20000",
  topicsArg = "label.,segment."] = process.argv.slice(2);
const count = Number(countArg);
const OPEN_SET = new Set(["unknown", "idle"]);

// Schema 2: a label message's label is the decision, topk the classes' ranking.
function decision(topic, msg) {
  if (topic.startsWith("segment.")) return "segment";
  if (msg.v >= 2 && OPEN_SET.has(msg.label)) return msg.label;
  if (msg.label !== msg.topk[0][0]) throw new Error(`class label ${msg.label} is not the top class`);
  return "class";
}

const sock = new Subscriber({ receiveTimeout: Number(timeoutArg) });
sock.connect(endpoint);
for (const t of topicsArg.split(",")) sock.subscribe(t);
let n = 0;
try {
  for await (const [topicBuf, payload] of sock) {
    const topic = topicBuf.toString();
    const msg = decode(payload);
    const line = JSON.stringify({ topic, ...msg },
      (_k, v) => (typeof v === "bigint" ? Number(v) : v));
    console.log(line.slice(0, -1) + `,"decision":${JSON.stringify(decision(topic, msg))}}`);
    if (++n >= count) break;
  }
} catch (err) {
  console.error(`error: ${err.message}`);
  process.exitCode = 1;
} finally {
  sock.close();
}
