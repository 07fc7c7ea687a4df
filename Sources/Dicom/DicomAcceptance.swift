/// Which objects a chest-X-ray triage gateway publishes: frontal chest radiographs. Anything
/// else is acknowledged to the sender (it was delivered), counted and not published.
public struct DicomAcceptance: Sendable, Equatable {
    /// Accepted modalities (CR: computed radiography; DX: digital radiography).
    public var modalities: Set<String> = ["CR", "DX"]
    /// Accepted Body Part Examined values; an absent body part is accepted.
    public var bodyParts: Set<String> = ["CHEST"]
    /// Accepted view positions (frontal: postero-anterior, antero-posterior).
    public var viewPositions: Set<String> = ["PA", "AP"]
    /// Whether an object without a view position is accepted.
    public var acceptMissingView = false
    /// Whether images flagged BurnedInAnnotation = YES are accepted: text burned into the pixels
    /// (a name, a date of birth) is not removed by de-identification.
    public var allowBurnedIn = false

    public init() {}

    /// Nil to publish, else why not (for the log and the `reason` label of the skip counter).
    public func refusal(_ info: DicomStudyInfo) -> Skip? {
        guard info.hasPixelData else { return Skip(reason: "no-pixels", detail: "no pixel data (SOP class \(info.sopClassUID ?? "absent"))") }
        guard let modality = info.modality, modalities.contains(modality) else {
            return Skip(reason: "modality", detail: "modality \(info.modality ?? "absent") is not one of \(modalities.sorted().joined(separator: ", "))")
        }
        if let part = info.bodyPart, !part.isEmpty, !bodyParts.contains(part) {
            return Skip(reason: "body-part", detail: "body part \(part) is not one of \(bodyParts.sorted().joined(separator: ", "))")
        }
        switch info.viewPosition {
        case let view? where !view.isEmpty:
            if !viewPositions.contains(view) {
                return Skip(reason: "view", detail: "view position \(view) is not one of \(viewPositions.sorted().joined(separator: ", "))")
            }
        default:
            if !acceptMissingView { return Skip(reason: "view", detail: "no view position (allow with --accept-missing-view)") }
        }
        if info.burnedInAnnotation == "YES", !allowBurnedIn {
            return Skip(reason: "burned-in", detail: "BurnedInAnnotation is YES: burned-in text is not removed by de-identification (allow with --allow-burned-in)")
        }
        return nil
    }

    /// Why an object was not published.
    public struct Skip: Sendable, Equatable, CustomStringConvertible {
        /// A short, stable code: modality, body-part, view, burned-in, no-pixels.
        public var reason: String
        public var detail: String
        public var description: String { detail }
    }
}
