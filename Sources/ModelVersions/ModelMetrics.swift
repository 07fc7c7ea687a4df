import Metrics

/// Which model version a stage uses: `xray_model_version_info{stage, version}` is 1 for the
/// version in force and 0 for those before it; `xray_model_versions_total{stage, outcome}`
/// counts accepted and refused versions.
struct ModelMetrics: Sendable {
    let stage: String

    func accepted(_ version: String, previous: String?) {
        if let previous, previous != version {
            Gauge(label: "xray_model_version_info", dimensions: [("stage", stage), ("version", previous)]).record(0)
        }
        Gauge(label: "xray_model_version_info", dimensions: [("stage", stage), ("version", version)]).record(1)
        Counter(label: "xray_model_versions_total", dimensions: [("stage", stage), ("outcome", "accepted")]).increment()
    }

    func refused() {
        Counter(label: "xray_model_versions_total", dimensions: [("stage", stage), ("outcome", "refused")]).increment()
    }
}
