// A finetec-live subscriber outside Python: npm's zeromq and @msgpack/msgpack.
// Usage: node subscribe.mjs ENDPOINT COUNT [TIMEOUT_MS] [TOPICS]
// TOPICS: comma-separated topic prefixes (default "label.,segment."). Prints each
// decoded payload as one JSON line, with its topic and what a consumer reads from it
// ("decision": "class", "unknown" or "idle" for a label of schema 2 or later, "segment"
// for a segment; "who": the person and their box, schema 3); exits 0 after COUNT
// messages, 1 on timeout or a message it cannot read.
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

// Schema 3: every label and segment names its person (a track id); a label has the box
// of the person's last posed frame, [x0, y0, x1, y1] in source pixels.
function who(topic, msg) {
  if (msg.v < 3) return "person 0";
  if (!Number.isInteger(msg.person) || msg.person < 0) throw new Error(`bad person ${msg.person}`);
  if (topic.startsWith("segment.")) return `person ${msg.person}`;
  const b = msg.box;
  if (!Array.isArray(b) || b.length !== 4 || !(b[0] <= b[2] && b[1] <= b[3])) {
    throw new Error(`bad box ${JSON.stringify(b)}`);
  }
  return `person ${msg.person} at ${b.map((x) => Math.round(x)).join(",")}`;
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
    console.log(line.slice(0, -1) + `,"decision":${JSON.stringify(decision(topic, msg))}` +
      `,"who":${JSON.stringify(who(topic, msg))}}`);
    if (++n >= count) break;
  }
} catch (err) {
  console.error(`error: ${err.message}`);
  process.exitCode = 1;
} finally {
  sock.close();
}
