// Runs an exported model over a sparse table (manifest preprocessing
// "criteo") with onnxruntime over a Criteo file, making each line's inputs
// from the model alone (docs/FORMATS.md, "A model over a sparse table"):
// the numeric features log(1 + x), each categorical field's 64-bit FNV-1a
// id (one byte, the field's number, then the value), looked up in the
// sorted ids the model carries (its initializer
// "layer0.sparse_embedding.ids", inline or in external data), and compares
// the probabilities with those `tessera predict` wrote for the same file.
//
//   cd /tmp && npm install --ignore-scripts onnxruntime-node
//   NODE_PATH=/tmp/node_modules node scripts/onnxruntime_criteo_check.js \
//       MODEL_VERSION_DIR INPUT.tsv[.gz] PREDICTIONS.csv
//
// Prints the largest difference of a probability; exits 1 when one differs
// by more than 1e-5.
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const ort = require('onnxruntime-node');

const INTEGERS = 13, FIELDS = 26;

// A protobuf message's fields: [number, wire type, value (a Buffer for
// length-delimited fields, a BigInt for varints)].
function* protoFields(buf) {
  let at = 0;
  const varint = () => {
    let v = 0n, shift = 0n;
    for (;;) {
      const b = buf[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  while (at < buf.length) {
    const key = varint();
    const number = Number(key >> 3n), type = Number(key & 7n);
    if (type === 0) yield [number, type, varint()];
    else if (type === 2) { const n = Number(varint()); yield [number, type, buf.subarray(at, at + n)]; at += n; }
    else if (type === 1) { yield [number, type, buf.subarray(at, at + 8)]; at += 8; }
    else if (type === 5) { yield [number, type, buf.subarray(at, at + 4)]; at += 4; }
    else throw new Error('unsupported wire type ' + type);
  }
}

// The sorted uint64 ids (BigUint64Array) of the model in `dir`.
function tableIds(dir) {
  const model = fs.readFileSync(path.join(dir, 'model.onnx'));
  for (const [n, , graph] of protoFields(model)) {
    if (n !== 7) continue;  // ModelProto.graph
    for (const [g, , tensor] of protoFields(graph)) {
      if (g !== 5) continue;  // GraphProto.initializer
      let name = '', raw = null;
      const external = {};
      for (const [t, , v] of protoFields(tensor)) {
        if (t === 8) name = v.toString();  // TensorProto.name
        if (t === 9) raw = v;              // raw_data
        if (t === 13) {                    // external_data: key 1, value 2
          let key = '', value = '';
          for (const [e, , s] of protoFields(v)) { if (e === 1) key = s.toString(); else if (e === 2) value = s.toString(); }
          external[key] = value;
        }
      }
      if (name !== 'layer0.sparse_embedding.ids') continue;
      if (raw === null) {
        const data = fs.readFileSync(path.join(dir, external.location));
        const offset = Number(external.offset || 0);
        raw = data.subarray(offset, offset + Number(external.length));
      }
      const copy = Buffer.from(raw);  // aligned
      return new BigUint64Array(copy.buffer, copy.byteOffset, copy.length / 8);
    }
  }
  throw new Error('no layer0.sparse_embedding.ids in ' + dir);
}

function criteoId(number, value) {
  let h = 0xcbf29ce484222325n;
  const mix = (b) => { h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn; };
  mix(number);
  for (const b of Buffer.from(value, 'utf8')) mix(b);
  return h === 0xffffffffffffffffn ? h - 1n : h;
}

// 1 + the index of `id` in `ids`, 0 when absent.
function rowOf(ids, id) {
  let lo = 0, hi = ids.length;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (ids[mid] < id) lo = mid + 1; else hi = mid; }
  return lo < ids.length && ids[lo] === id ? lo + 1 : 0;
}

(async () => {
  const [dir, input, predictions] = process.argv.slice(2);
  const ids = tableIds(dir);
  let text = fs.readFileSync(input);
  if (input.endsWith('.gz')) text = zlib.gunzipSync(text);
  const lines = text.toString('utf8').split('\n').filter((l) => l.length > 0);
  const numeric = new Float32Array(lines.length * INTEGERS);
  const rows = new BigInt64Array(lines.length * FIELDS);
  lines.forEach((line, r) => {
    const f = line.split('\t');
    for (let i = 0; i < INTEGERS; ++i) {
      const x = f[1 + i] === '' ? 0 : Number(f[1 + i]);
      numeric[r * INTEGERS + i] = x > 0 ? Math.log1p(x) : 0;
    }
    for (let c = 0; c < FIELDS; ++c) {
      const v = f[1 + INTEGERS + c];
      rows[r * FIELDS + c] = BigInt(v === '' ? 0 : rowOf(ids, criteoId(c + 1, v)));
    }
  });
  const session = await ort.InferenceSession.create(path.join(dir, 'model.onnx'));
  const out = await session.run({
    input: new ort.Tensor('float32', numeric, [lines.length, INTEGERS]),
    rows: new ort.Tensor('int64', rows, [lines.length, FIELDS]),
  });
  const p = out.probability.data;
  const csv = fs.readFileSync(predictions, 'utf8').split('\n').filter((l) => l.length > 0);
  const column = csv[0].split(',').indexOf('probability');
  let worst = 0;
  for (let r = 0; r < lines.length; ++r) {
    worst = Math.max(worst, Math.abs(p[r] - Number(csv[r + 1].split(',')[column])));
  }
  console.log(`${lines.length} rows, ${ids.length} table rows: the largest probability difference is ${worst}`);
  process.exit(worst > 1e-5 ? 1 : 0);
})().catch((e) => { console.error(String(e)); process.exit(1); });
