import Metrics

/// What a stage reports to the metrics system (Prometheus when `--metrics-port` is given; a
/// no-op otherwise). Names follow Prometheus conventions; every series has a `stage` label.
///
/// - `xray_records_consumed_total`, `xray_records_produced_total` (outputs the broker
///   acknowledged), `xray_send_retries_total`: counters
/// - `xray_records_dead_lettered_total{reason}`: inputs refused, by the kind of fault
///   (`faultCode`: `malformed`, `non-finite`, `too-large`, `wrong-shape`, `output-refused`...)
/// - `xray_batch_size`: histogram of records per `process(batch:)` call
/// - `xray_processing_seconds`: histogram of time in `process(batch:)` per batch
/// - `xray_consumer_lag`: records on the broker not fetched yet, per `topic` and `partition`
struct StageMetrics: Sendable {
    let stage: String
    let consumed: Counter, produced: Counter, retries: Counter
    let batchSize: Recorder
    let processing: Metrics.Timer

    init(stage: String) {
        self.stage = stage
        let d = [("stage", stage)]
        consumed = Counter(label: "xray_records_consumed_total", dimensions: d)
        produced = Counter(label: "xray_records_produced_total", dimensions: d)
        retries = Counter(label: "xray_send_retries_total", dimensions: d)
        batchSize = Recorder(label: "xray_batch_size", dimensions: d, aggregate: true)
        processing = Metrics.Timer(label: "xray_processing_seconds", dimensions: d)
    }

    func deadLettered(reason: String) {
        Counter(label: "xray_records_dead_lettered_total", dimensions: [("stage", stage), ("reason", reason)]).increment()
    }

    func lag(_ records: Int64, topic: String, partition: Int32) {
        Gauge(label: "xray_consumer_lag", dimensions: [("stage", stage), ("topic", topic), ("partition", String(partition))])
            .record(records)
    }
}
