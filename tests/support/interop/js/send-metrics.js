// A metrics-only client in JavaScript: the OpenTelemetry JS SDK (sdk-metrics) sends a trainer's documented
// metrics to a collector, no spans at all.
//
//   node send-metrics.js PROTOCOL URL RUN_ID EPOCHS
//
// PROTOCOL is grpc | http-proto | http-json. Instruments follow pinnprov's vocabulary (core/vocabulary.py):
// the gauge `pinn.loss` with one series per `pinn.loss.component`, the gauge `pinn.learning_rate`, the counter
// `pinn.epochs` and the histogram `pinn.epoch.duration` (s). The run id travels as the resource attribute
// `pinn.run.id`. One export per epoch (forceFlush), cumulative temporality (the SDK's default). Exits 1 if any
// export failed.
'use strict';

const { MeterProvider, PeriodicExportingMetricReader } = require('@opentelemetry/sdk-metrics');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { ExportResultCode } = require('@opentelemetry/core');

const [protocol, url, runId, epochText] = process.argv.slice(2);
const epochs = Number(epochText);

function exporterFor(kind) {
  const options = { url, timeoutMillis: 10000 };
  if (kind === 'grpc') return new (require('@opentelemetry/exporter-metrics-otlp-grpc').OTLPMetricExporter)(options);
  if (kind === 'http-proto') return new (require('@opentelemetry/exporter-metrics-otlp-proto').OTLPMetricExporter)(options);
  if (kind === 'http-json') return new (require('@opentelemetry/exporter-metrics-otlp-http').OTLPMetricExporter)(options);
  throw new Error(`unknown protocol ${kind}`);
}

const inner = exporterFor(protocol);
let failures = 0;
let exportCount = 0;
const exporter = {
  export(metrics, done) {
    inner.export(metrics, (result) => {
      exportCount += 1;
      if (result.code !== ExportResultCode.SUCCESS) {
        failures += 1;
        console.error(`metrics export failed: ${result.error}`);
      }
      done(result);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => inner.forceFlush(),
  selectAggregationTemporality: (kind) => inner.selectAggregationTemporality(kind),
};

async function main() {
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3600000 });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': `interop-js-metrics-${protocol}`, 'pinn.run.id': runId }),
    readers: [reader],
  });
  const meter = provider.getMeter('pinnprov');
  const loss = meter.createGauge('pinn.loss', { unit: '1', description: 'latest loss per component' });
  const rate = meter.createGauge('pinn.learning_rate', { unit: '1' });
  const count = meter.createCounter('pinn.epochs', { unit: '1', description: 'completed epochs' });
  const duration = meter.createHistogram('pinn.epoch.duration', {
    unit: 's', advice: { explicitBucketBoundaries: [0.1, 0.2, 0.3, 0.5, 1] },
  });
  for (let epoch = 0; epoch < epochs; epoch++) {
    loss.record(100 / (epoch + 1), { 'pinn.loss.component': 'total' });
    loss.record(0.1 / (epoch + 1), { 'pinn.loss.component': 'boundary' });
    loss.record(1.5 / (epoch + 1), { 'pinn.loss.component': 'residual' });
    loss.record(40 / (epoch + 1), { 'pinn.loss.component': 'data' });
    rate.record(0.001 * 0.99 ** epoch);
    count.add(1);
    duration.record(0.25);
    await reader.forceFlush();
    await new Promise((resolve) => setTimeout(resolve, 5)); // distinct point times per epoch
  }
  await provider.shutdown();
  console.log(`sent ${epochs} epochs of metrics over ${protocol}, ${exportCount} exports, ${failures} failed exports`);
  process.exit(failures ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
