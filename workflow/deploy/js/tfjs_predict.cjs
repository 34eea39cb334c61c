// Runs a TF.js graph model on a batch in Node.js with the pure-JS CPU backend and writes its outputs.
// Usage: node tfjs_predict.cjs <model_dir> <input.json> <output.json> [latency_repeats]
// With latency_repeats, also times that many single-example runs (after one warm-up) and writes
// their median in milliseconds as "latency_ms".
// input.json: a list of named inputs, [{"name": "images", "dtype": "int32", "shape": [n, h, w, c], "data": [...]}]
// (a table model has one per column, dtype float32, int32 or string, shape [n])
// output.json: {"<output name>": {"shape": [...], "data": [...]}, "backend": "cpu", "tfjs": "<version>"}
// @tensorflow/tfjs is resolved through NODE_PATH, which points at the cached Node environment.
"use strict";
const fs = require("fs");
const path = require("path");
const tf = require("@tensorflow/tfjs");

function fileHandler(modelDir) {
  // tf.io's file:// handler lives in tfjs-node, which we do not install; this reads the same files.
  return {
    load: async () => {
      const modelJson = JSON.parse(fs.readFileSync(path.join(modelDir, "model.json"), "utf8"));
      const specs = [];
      const buffers = [];
      for (const group of modelJson.weightsManifest) {
        specs.push(...group.weights);
        for (const shardPath of group.paths) {
          buffers.push(fs.readFileSync(path.join(modelDir, shardPath)));
        }
      }
      const joined = Buffer.concat(buffers);
      return {
        modelTopology: modelJson.modelTopology,
        format: modelJson.format,
        generatedBy: modelJson.generatedBy,
        convertedBy: modelJson.convertedBy,
        signature: modelJson.signature,
        userDefinedMetadata: modelJson.userDefinedMetadata,
        modelInitializer: modelJson.modelInitializer,
        weightSpecs: specs,
        weightData: joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength),
      };
    },
  };
}

async function main() {
  const [modelDir, inputPath, outputPath, repeats] = process.argv.slice(2);
  if (!outputPath) {
    throw new Error("usage: node tfjs_predict.cjs <model_dir> <input.json> <output.json>");
  }
  await tf.setBackend("cpu");
  const model = await tf.loadGraphModel(fileHandler(modelDir));
  const batch = JSON.parse(fs.readFileSync(inputPath, "utf8"));
  const inputs = {};
  for (const entry of batch) {
    inputs[entry.name] = tf.tensor(entry.data, entry.shape, entry.dtype);
  }
  const outputNames = Object.keys(model.signature.outputs);
  const tensors = model.execute(inputs, outputNames);
  const result = { backend: tf.getBackend(), tfjs: tf.version.tfjs };
  (Array.isArray(tensors) ? tensors : [tensors]).forEach((tensor, i) => {
    result[outputNames[i]] = { shape: tensor.shape, data: Array.from(tensor.dataSync()) };
  });
  if (repeats) {
    const single = {};
    for (const [name, tensor] of Object.entries(inputs)) {
      single[name] = tensor.slice([0], [1]);
    }
    const times = [];
    for (let i = 0; i <= Number(repeats); i++) {
      const started = process.hrtime.bigint();
      const out = model.execute(single, outputNames);
      (Array.isArray(out) ? out : [out]).forEach((t) => { t.dataSync(); t.dispose(); });
      if (i > 0) times.push(Number(process.hrtime.bigint() - started) / 1e6);
    }
    times.sort((a, b) => a - b);
    result.latency_ms = times[Math.floor(times.length / 2)];
  }
  fs.writeFileSync(outputPath, JSON.stringify(result));
}

main().catch((error) => {
  console.error(error && error.stack ? error.stack : String(error));
  process.exit(1);
});
