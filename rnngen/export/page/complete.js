// An rnngen model completing prompts in this browser: ONNX Runtime Web runs model.onnx, the browser build of
// sentencepiece encodes the prompt with tokenizer.model, and each token is decoded from its bytes in model.json.
// Everything is read from this folder; nothing the visitor types is sent anywhere.
import * as ort from "./vendor/ort.wasm.min.mjs";
import { SentencePieceProcessor } from "./vendor/sentencepiece.js";

// Threads need a cross-origin isolated page, which a plain static host does not give; one thread is also what a
// step of a small recurrent model (a few matrix-vector products) runs fastest on.
ort.env.wasm.numThreads = 1;

const $ = (id) => document.getElementById(id);
let model = null;
let running = false;
let stopped = false;

// rnngen's tokenizer escapes U+2581 (sentencepiece's space mark) before encoding and unescapes after decoding, so that
// the character survives (rnngen/data/tokenizer.py); the same here.
const SPACE_META = "\u2581", ESCAPE = "\uf8ff", ESCAPED_META = "\uf8fe";
const escapeText = (text) => text.replaceAll(ESCAPE, ESCAPE + ESCAPE).replaceAll(SPACE_META, ESCAPE + ESCAPED_META);
const unescapeText = (text) =>
  text.replace(/\uf8ff([\s\S])/gu, (match, next) =>
    next === ESCAPE ? ESCAPE : next === ESCAPED_META ? SPACE_META : match);

// Tokens to text as they come: a character split over byte pieces appears once whole (rnngen's StreamDecoder).
class StreamDecoder {
  constructor(pieces) {
    this.pieces = pieces;
    this.utf8 = new TextDecoder("utf-8");
    this.held = "";
  }
  unescape(text) {
    text = this.held + text;
    const trailing = text.length - text.replace(/\uf8ff+$/u, "").length;
    this.held = trailing % 2 ? ESCAPE : "";
    return unescapeText(text.slice(0, text.length - this.held.length));
  }
  push(token) {
    return this.unescape(this.utf8.decode(this.pieces[token], { stream: true }));
  }
  flush() {
    const text = this.unescape(this.utf8.decode()) + this.held;
    this.held = "";
    return text;
  }
}

function hexBytes(hex) {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function fetched(name) {
  const response = await fetch(name);
  if (!response.ok) throw new Error(`cannot read ${name}: ${response.status} ${response.statusText}`);
  return response;
}

async function load() {
  const meta = await (await fetched("model.json")).json();
  const sp = new SentencePieceProcessor();
  await sp.loadFromB64StringModel(base64(new Uint8Array(await (await fetched(meta.tokenizer.file)).arrayBuffer())));
  const graph = new Uint8Array(await (await fetched(meta.graph.file)).arrayBuffer());
  const session = await ort.InferenceSession.create(graph, { executionProviders: ["wasm"] });
  return { meta, sp, session, pieces: meta.pieces.map(hexBytes) };
}

// The prompt's ids as rnngen encodes it: whole with byte fallback, else (the word model) line by line around the
// newline piece. Exported for scripts that use the loaded model (the tests compare it with rnngen's).
export function encode(text) {
  const { sp, meta } = model;
  if (meta.tokenizer.byte_fallback) return sp.encodeIds(escapeText(text));
  return text.split("\n").flatMap((line, i) =>
    (i ? [meta.special_tokens.newline] : []).concat(line ? sp.encodeIds(escapeText(line)) : []));
}

// Feed ids to the model from `state`: the next-token logits after the last id and the state after it.
async function feed(ids, state) {
  const { meta, session } = model;
  const inputs = { [meta.graph.inputs[0]]: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]) };
  meta.state.forEach((part, i) => { inputs[part.input] = state[i]; });
  const out = await session.run(inputs);
  const logits = out[meta.graph.outputs[0]];
  const vocab = logits.dims[2];
  return [logits.data.slice((ids.length - 1) * vocab, ids.length * vocab), meta.state.map((part) => out[part.output])];
}

function zeroState() {
  return model.meta.state.map((part) =>
    new ort.Tensor("float32", new Float32Array(part.shape.reduce((a, b) => a * b)), part.shape));
}

function softmax(logits, temperature) {
  let max = -Infinity;
  for (const value of logits) max = Math.max(max, value / temperature);
  const probs = new Float64Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += probs[i] = Math.exp(logits[i] / temperature - max);
  for (let i = 0; i < probs.length; i++) probs[i] /= sum;
  return probs;
}

// A seeded uniform generator in [0, 1) (mulberry32): the same seed draws the same completion in any browser.
function generator(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The next token: the most likely at temperature 0 (the first of equals, as rnngen's argmax), else a draw among the
// most likely tokens that make up top-p of the probability.
function choose(logits, temperature, topP, random) {
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const probs = softmax(logits, Math.max(temperature, 1e-4));
  if (topP >= 1) { // every token: ranking the vocabulary would cost more than the model's step
    let target = random();
    for (let i = 0; i < probs.length - 1; i++) if ((target -= probs[i]) < 0) return i;
    return probs.length - 1;
  }
  const order = Array.from(probs.keys()).sort((a, b) => probs[b] - probs[a] || a - b);
  let kept = 0, mass = 0;
  while (kept < order.length && (kept === 0 || mass < topP)) mass += probs[order[kept++]];
  let target = random() * mass;
  for (let i = 0; i < kept - 1; i++) if ((target -= probs[order[i]]) < 0) return order[i];
  return order[kept - 1];
}

// Shade from red (unlikely) through yellow to green (likely), on a log scale of the probability, as `rnngen serve`'s
// page does.
function shade(p) {
  const t = Math.max(0, Math.min(1, 1 + Math.log10(Math.max(p, 1e-4)) / 4));
  return `hsl(${Math.round(120 * t)} ${t > 0.5 ? 60 : 85}% 82%)`;
}

function addToken(text, p) {
  const span = Object.assign(document.createElement("span"), { className: "tok", textContent: text });
  span.style.background = shade(p);
  span.title = `p = ${p.toFixed(4)}`;
  $("output").append(span);
}

function number(id, fallback) {
  const value = $(id).value.trim();
  return value === "" ? fallback : Number(value);
}

function showError(error) {
  const text = String(error.message || error);
  $("status").replaceChildren(Object.assign(document.createElement("span"), { className: "error", textContent: text }));
}

async function complete() {
  if (running || !model) return; // one completion at a time: Ctrl+Enter reaches here while Complete is disabled
  running = true;
  stopped = false;
  $("go").disabled = true;
  $("stop").disabled = false;
  const prompt = $("prompt").value;
  const maxTokens = number("max_tokens", 80), temperature = number("temperature", 0.8), topP = number("top_p", 1);
  const seed = number("seed", null);
  const random = generator(seed === null ? crypto.getRandomValues(new Uint32Array(1))[0] : seed);
  const shownPrompt = Object.assign(document.createElement("span"), { className: "prompt", textContent: prompt });
  $("output").replaceChildren(shownPrompt);
  $("status").textContent = "completing...";
  const { meta } = model;
  let tokens = 0, reason = null;
  try {
    let [logits, state] = await feed([...meta.start, ...encode(prompt)], zeroState());
    const decoder = new StreamDecoder(model.pieces);
    const started = performance.now();
    while (!stopped) {
      const token = choose(logits, temperature, topP, random);
      if (token === meta.special_tokens.end_of_text) {
        reason = "end_of_text";
        break;
      }
      tokens++;
      addToken(decoder.push(token), softmax(logits, 1)[token]);
      if (tokens === maxTokens) {
        reason = "max_tokens";
        break;
      }
      [logits, state] = await feed([token], state);
    }
    const rest = decoder.flush();
    if (rest) addToken(rest, 1);
    const seconds = (performance.now() - started) / 1000;
    const pace = `${(tokens / Math.max(seconds, 1e-9)).toFixed(0)} tokens/s`;
    $("status").textContent = reason
      ? `${tokens} tokens, ${pace}, finished: ${reason}`
      : `stopped after ${tokens} tokens`;
  } catch (error) {
    showError(error);
  } finally {
    running = false;
    $("go").disabled = false;
    $("stop").disabled = true;
  }
}

$("go").addEventListener("click", complete);
$("stop").addEventListener("click", () => { stopped = true; });
$("prompt").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) complete(); });
try {
  model = await load();
  const { meta } = model;
  const shape = `${meta.model.layers}x${meta.model.hidden} ${meta.model.kind}`;
  $("about").textContent = `${meta.run}: a ${shape}, completing your text in this browser; nothing you type leaves it`;
  $("status").textContent = "ready";
  $("go").disabled = false;
} catch (error) {
  showError(error);
}
