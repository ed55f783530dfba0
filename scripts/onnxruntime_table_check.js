// Runs an exported table model (numeric and categorical columns) with
// onnxruntime over a CSV, preprocessing each row from manifest.json alone
// (docs/FORMATS.md, "preprocessing"), and compares the probabilities with
// those `tessera predict` wrote for the same file.
//
//   cd /tmp && npm install --ignore-scripts onnxruntime-node
//   NODE_PATH=/tmp/node_modules node scripts/onnxruntime_table_check.js \
//       MODEL_VERSION_DIR INPUT.csv PREDICTIONS.csv
//
// Prints the largest difference of a probability and the rows whose class
// differs; exits 1 when a probability differs by more than 1e-5.
// The CSV is read naively (no quoted fields).
'use strict';
const fs = require('fs');
const ort = require('onnxruntime-node');

// 64-bit FNV-1a of the field's UTF-8 bytes (core/categorical.h's Fnv1a64).
function fnv1a64(text) {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(text, 'utf8')) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  return h;
}

function featureOf(column, field) {
  if (column.kind === 'categorical') {
    if (field === '') return 0;
    if (column.hash_buckets) return 1 + Number(fnv1a64(field) % BigInt(column.hash_buckets));
    const k = column.vocabulary.indexOf(field);
    return k < 0 ? 0 : k + 1;
  }
  const v = field === '' ? column.fill_value : Math.fround(Number(field));
  return Math.fround(Math.fround(v - column.shift) * column.scale);
}

async function main() {
  const [versionDir, inputCsv, predictionsCsv] = process.argv.slice(2);
  const manifest = JSON.parse(fs.readFileSync(versionDir + '/manifest.json', 'utf8'));
  const columns = manifest.preprocessing.columns;
  const lines = fs.readFileSync(inputCsv, 'utf8').split('\n').filter((l) => l.length > 0);
  const header = lines[0].split(',');
  const where = columns.map((c) => header.indexOf(c.name));
  const rows = lines.slice(1).map((l) => l.split(','));
  const x = new Float32Array(rows.length * columns.length);
  rows.forEach((fields, r) => columns.forEach((c, f) => { x[r * columns.length + f] = featureOf(c, fields[where[f]]); }));
  const session = await ort.InferenceSession.create(versionDir + '/model.onnx');
  const out = await session.run({input: new ort.Tensor('float32', x, [rows.length, columns.length])});
  const probabilities = out.probabilities.data;
  const classes = out.probabilities.dims[1];
  const predicted = fs.readFileSync(predictionsCsv, 'utf8').split('\n').filter((l) => l.length > 0).slice(1)
      .map((l) => l.split(','));
  let worst = 0;
  let classDiffers = 0;
  predicted.forEach((p, r) => {
    let best = 0;
    for (let k = 0; k < classes; ++k) {
      worst = Math.max(worst, Math.abs(probabilities[r * classes + k] - Number(p[2 + k])));
      if (probabilities[r * classes + k] > probabilities[r * classes + best]) best = k;
    }
    classDiffers += String(best) !== p[1];
  });
  console.log(`${rows.length} rows: largest probability difference ${worst}, ${classDiffers} classes differ`);
  process.exit(worst <= 1e-5 && predicted.length === rows.length ? 0 : 1);
}

main().catch((e) => { console.error(e.message); process.exit(1); });
