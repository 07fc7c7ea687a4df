/// What travels with an image in record headers: who, when, what is known of it.
public struct ImageMetadata: Sendable, Equatable {
    public var imageID: String
    public var source: String?
    /// Milliseconds since the Unix epoch.
    public var acquiredAt: Int64?
    /// Positive findings when the image is labelled ([] = labelled, no finding); nil when unlabelled.
    public var labels: [String]?
    public var patientID: String?
    public var traceparent: String?

    public init(imageID: String, source: String? = nil, acquiredAt: Int64? = nil, labels: [String]? = nil,
                patientID: String? = nil, traceparent: String? = nil) {
        self.imageID = imageID
        self.source = source
        self.acquiredAt = acquiredAt
        self.labels = labels
        self.patientID = patientID
        self.traceparent = traceparent
    }

    /// The header fields, in a stable order.
    public var headerFields: [(name: String, value: String)] {
        var fields: [(String, String)] = [(HeaderName.imageID, imageID)]
        if let source { fields.append((HeaderName.source, source)) }
        if let acquiredAt { fields.append((HeaderName.acquiredAt, String(acquiredAt))) }
        if let labels { fields.append((HeaderName.labels, labels.joined(separator: ","))) }
        if let patientID { fields.append((HeaderName.patientID, patientID)) }
        if let traceparent { fields.append((HeaderName.traceparent, traceparent)) }
        return fields
    }

    /// Reads metadata from headers through `lookup` (name → last text value). Falls back to
    /// `key` for the image id; returns nil if neither gives one.
    public init?(lookup: (String) -> String?, key: String?) {
        guard let id = lookup(HeaderName.imageID) ?? key, !id.isEmpty else { return nil }
        self.init(imageID: id,
                  source: lookup(HeaderName.source),
                  acquiredAt: lookup(HeaderName.acquiredAt).flatMap { Int64($0) },
                  labels: lookup(HeaderName.labels).map(ImageMetadata.parseLabels),
                  patientID: lookup(HeaderName.patientID),
                  traceparent: lookup(HeaderName.traceparent))
    }

    /// "A,B" → ["A", "B"]; "" → [] (labelled, no finding).
    public static func parseLabels(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingWhitespace() }.filter { !$0.isEmpty }
    }
}

extension Substring {
    func trimmingWhitespace() -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}
