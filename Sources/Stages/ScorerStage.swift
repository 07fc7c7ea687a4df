import CheckedArithmetic
import Foundation
public import KafkaIO
public import Logging
public import Wire

/// xray.tensors → xray.predictions (every image) and xray.alerts (urgent images), scoring
/// batches with the version the `ModelSlot` serves when the batch starts.
///
/// A tensor that is malformed, of the wrong shape or holds a NaN or infinity is dead-lettered
/// before it is scored. If the model nonetheless gives a non-finite probability for an input,
/// that input is dead-lettered (`non-finite-output`) and logged as an error: the model, not
/// the image, is suspect, and no prediction carries a number JSON cannot hold.
public struct ScorerStage: Stage {
    public let name = "scorer"
    public let inputTopic: String
    let predictionsTopic: String
    let alertsTopic: String
    public let slot: ModelSlot
    public let batching: Batching
    private let logger: Logger

    public init(topics: TopicCatalog, slot: ModelSlot, batching: Batching = Batching(maxRecords: 16, maxWait: .milliseconds(20)),
                logger: Logger = Logger(label: "xray.scorer")) {
        inputTopic = topics.tensors
        predictionsTopic = topics.predictions
        alertsTopic = topics.alerts
        self.slot = slot
        self.batching = batching
        self.logger = logger
    }

    public func process(_ record: KafkaRecord) throws -> [OutgoingRecord] {
        try process(batch: [record])[0].get()
    }

    public func process(batch: [KafkaRecord]) -> [Result<[OutgoingRecord], any Error>] {
        guard let model = slot.current else {
            return batch.map { _ in .failure(BadInput("no model is serving yet", code: "no-model")) }
        }
        var results = [Result<[OutgoingRecord], any Error>](repeating: .success([]), count: batch.count)
        var inputs: [(index: Int, id: String, values: [Float])] = []
        for (index, record) in batch.enumerated() {
            do {
                let id = try record.imageID()
                let tensor = try Tensor(decoding: record.value)
                guard tensor.shape == model.manifest.input else {
                    throw BadInput("tensor shape \(tensor.shape) is not model \(model.version)'s input \(model.manifest.input); is the preprocessor following the same manifest?",
                                   code: "wrong-shape")
                }
                inputs.append((index, id, tensor.values))
            } catch {
                results[index] = .failure(error)
            }
        }
        guard !inputs.isEmpty else { return results }
        let probabilities = model.probabilities(inputs.map(\.values))
        let scoredAt = epochMilliseconds()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        for (input, p) in zip(inputs, probabilities) {
            let record = batch[input.index]
            if let bad = CheckedSize.firstNonFinite(p) {
                logger.error("model \(model.version) gave a non-finite probability (\(model.manifest.labels[bad]): \(p[bad])) for \(input.id) at \(record.topic)[\(record.partition)]@\(record.offset); dead-lettering the image. Check the model version.")
                results[input.index] = .failure(BadInput("model \(model.version) gave a non-finite probability for \(model.manifest.labels[bad]); the model is suspect, not the image",
                                                         code: "non-finite-output"))
                continue
            }
            results[input.index] = Result {
                try outputs(for: record, id: input.id, probabilities: p, model: model, at: scoredAt, encoder: encoder)
            }
        }
        return results
    }

    func outputs(for record: KafkaRecord, id: String, probabilities: [Float], model: ServingModel, at scoredAt: Int64,
                 encoder: JSONEncoder) throws -> [OutgoingRecord] {
        let labels = model.manifest.labels
        let site = record.headers.text(HeaderName.site).flatMap(ImageMetadata.validSite)
        let (findings, level) = model.policy.assess(labels: labels, probabilities: probabilities, site: site)
        func time(_ header: String) -> Int64? { record.headers.text(header).flatMap { Int64($0) } }
        var prediction = Prediction(
            imageId: id, modelVersion: model.version,
            probabilities: zip(labels, probabilities).map { LabelProbability(label: $0, probability: $1) },
            triage: level, findings: findings,
            times: StageTimes(acquired: time(HeaderName.acquiredAt), received: time(HeaderName.receivedAt), decoded: time(HeaderName.decodedAt),
                              preprocessed: time(HeaderName.preprocessedAt), scored: scoredAt),
            source: record.headers.text(HeaderName.source), patientId: record.headers.text(HeaderName.patientID),
            labels: record.headers.text(HeaderName.labels).map(ImageMetadata.parseLabels))
        prediction.modelEvaluation = model.evaluation
        prediction.site = site
        var headers = [KafkaHeader(HeaderName.imageID, id), KafkaHeader(HeaderName.contentType, ContentType.json),
                       KafkaHeader(HeaderName.schema, String(Prediction.schemaVersion)),
                       KafkaHeader(ModelVersionRecord.Header.version, model.version)]
        if let trace = record.headers.text(HeaderName.traceparent) { headers.append(KafkaHeader(HeaderName.traceparent, trace)) }
        var out = [OutgoingRecord(topic: predictionsTopic, key: id, value: [UInt8](try encoder.encode(prediction)), headers: headers)]
        if level == .urgent {
            let alert = Alert(prediction: prediction, policy: model.policy)
            out.append(OutgoingRecord(topic: alertsTopic, key: id, value: [UInt8](try encoder.encode(alert)), headers: headers))
        }
        return out
    }
}
