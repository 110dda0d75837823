// A finetec-live subscriber outside Python: npm's zeromq and @msgpack/msgpack.
// Usage: node subscribe.mjs ENDPOINT COUNT [TIMEOUT_MS]
// Prints each decoded label payload as one JSON line, with its topic; exits 0
// after COUNT labels, 1 on timeout.
import { decode } from "@msgpack/msgpack";
import { Subscriber } from "zeromq";

const [endpoint = "tcp://127.0.0.1:5557", countArg = "1", timeoutArg = "20000"] =
  process.argv.slice(2);
const count = Number(countArg);
const sock = new Subscriber({ receiveTimeout: Number(timeoutArg) });
sock.connect(endpoint);
sock.subscribe("label.");
let n = 0;
try {
  for await (const [topic, payload] of sock) {
    const msg = decode(payload);
    console.log(JSON.stringify({ topic: topic.toString(), ...msg },
      (_k, v) => (typeof v === "bigint" ? Number(v) : v)));
    if (++n >= count) break;
  }
} catch (err) {
  console.error(`error: ${err.message}`);
  process.exitCode = 1;
} finally {
  sock.close();
}
