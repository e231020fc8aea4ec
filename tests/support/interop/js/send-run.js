// A trainer stand-in in JavaScript: the OpenTelemetry JS SDK sends one pinnprov run to a collector.
//
//   node send-run.js PROTOCOL URL RUN_ID EPOCHS [gzip]
//
// PROTOCOL is grpc | http-proto | http-json. The run follows pinnprov's vocabulary (instrumentation/
// vocabulary.py): a root `pinn.run` span (trace id = run id), a `pinn.run.start` span with the
// hyperparameters, one `pinn.epoch` span per epoch, and the root span ended with the run's status.
// Values are exact functions of the epoch so the Python test can check every row. The node HTTP exporters
// pipe their body (Transfer-Encoding: chunked, no Content-Length). Exits 1 if any export failed.
'use strict';

const api = require('@opentelemetry/api');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { ExportResultCode } = require('@opentelemetry/core');

const [protocol, url, runId, epochText, compression] = process.argv.slice(2);
const epochs = Number(epochText);

function exporterFor(kind) {
  const options = { url, timeoutMillis: 10000, compression: compression === 'gzip' ? 'gzip' : 'none' };
  if (kind === 'grpc') return new (require('@opentelemetry/exporter-trace-otlp-grpc').OTLPTraceExporter)(options);
  if (kind === 'http-proto') return new (require('@opentelemetry/exporter-trace-otlp-proto').OTLPTraceExporter)(options);
  if (kind === 'http-json') return new (require('@opentelemetry/exporter-trace-otlp-http').OTLPTraceExporter)(options);
  throw new Error(`unknown protocol ${kind}`);
}

// Count failed exports: BatchSpanProcessor only logs them, and a test must fail on them.
const inner = exporterFor(protocol);
let failures = 0;
const exporter = {
  export(spans, done) {
    inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        failures += 1;
        console.error(`export of ${spans.length} spans failed: ${result.error}`);
      }
      done(result);
    });
  },
  shutdown: () => inner.shutdown(),
  forceFlush: () => (inner.forceFlush ? inner.forceFlush() : Promise.resolve()),
};

let spanCounter = 0;
const idGenerator = {
  generateTraceId: () => runId,
  generateSpanId: () => (++spanCounter).toString(16).padStart(16, '0'),
};

const T0 = 1700000000; // seconds, like tests/prov_builders.py
const at = (seconds) => [Math.floor(seconds), Math.round((seconds % 1) * 1e9)];

async function main() {
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': `interop-js-${protocol}` }),
    idGenerator,
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 50, maxExportBatchSize: 64 })],
  });
  const tracer = provider.getTracer('pinnprov');
  const runName = `js-${protocol}${compression === 'gzip' ? '-gzip' : ''}`;
  const identity = { 'pinn.run.id': runId, 'pinn.run.name': runName, 'pinn.experiment.name': 'interop' };
  const root = tracer.startSpan('pinn.run', { startTime: at(T0) });
  const context = api.trace.setSpan(api.context.active(), root);
  tracer.startSpan('pinn.run.start', {
    startTime: at(T0),
    attributes: {
      ...identity,
      'pinn.hp.optimizer': 'adam', 'pinn.hp.activation': 'tanh', 'pinn.hp.lr.schedule': 'exponential',
      'pinn.hp.lr.initial': 0.001, 'pinn.hp.lr.decay_rate': 0.99, 'pinn.hp.lr.decay_steps': 1,
      'pinn.hp.epochs': epochs, 'pinn.hp.seed': 1337,
    },
  }, context).end(at(T0));
  let clock = T0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    const span = tracer.startSpan('pinn.epoch', {
      startTime: at(clock),
      attributes: {
        'pinn.epoch': epoch, 'pinn.epoch.elapsed': 0.25, 'pinn.loss.total': 100 / 2 ** (epoch % 40) + 1,
        'pinn.loss.boundary': 0.1 / (epoch + 1), 'pinn.loss.residual': 1.5 / (epoch + 1),
        'pinn.loss.data': 40 / (epoch + 1), 'pinn.learning_rate': 0.001 * 0.99 ** epoch,
      },
    }, context);
    clock += 0.25;
    span.end(at(clock));
  }
  root.setAttributes({ ...identity, 'pinn.run.status': 'completed', 'pinn.run.epochs': epochs });
  root.end(at(clock + 1));
  await provider.forceFlush();
  await provider.shutdown();
  console.log(`sent ${epochs} epochs over ${protocol}${compression === 'gzip' ? ' (gzip)' : ''}, ${failures} failed exports`);
  process.exit(failures ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(2);
});
