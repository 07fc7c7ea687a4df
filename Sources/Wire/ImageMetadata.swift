/// What travels with an image in record headers: who, when, what is known of it.
public struct ImageMetadata: Sendable, Equatable {
    public var imageID: String
    public var source: String?
    /// The site the image comes from (`HeaderName.site`), when the sender names one.
    public var site: String?
    /// Milliseconds since the Unix epoch.
    public var acquiredAt: Int64?
    /// Positive findings when the image is labelled ([] = labelled, no finding); nil when unlabelled.
    public var labels: [String]?
    public var patientID: String?
    public var traceparent: String?

    public init(imageID: String, source: String? = nil, site: String? = nil, acquiredAt: Int64? = nil, labels: [String]? = nil,
                patientID: String? = nil, traceparent: String? = nil) {
        self.imageID = imageID
        self.source = source
        self.site = site
        self.acquiredAt = acquiredAt
        self.labels = labels
        self.patientID = patientID
        self.traceparent = traceparent
    }

    /// The header fields, in a stable order.
    public var headerFields: [(name: String, value: String)] {
        var fields: [(String, String)] = [(HeaderName.imageID, imageID)]
        if let source { fields.append((HeaderName.source, source)) }
        if let site { fields.append((HeaderName.site, site)) }
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
                  site: lookup(HeaderName.site).flatMap(ImageMetadata.validSite),
                  acquiredAt: lookup(HeaderName.acquiredAt).flatMap { Int64($0) },
                  labels: lookup(HeaderName.labels).map(ImageMetadata.parseLabels),
                  patientID: lookup(HeaderName.patientID),
                  traceparent: lookup(HeaderName.traceparent))
    }

    /// `name` when it can name a site (1 to 64 of letters, digits, `_`, `-`: it becomes part
    /// of metric names, `site.<site>.auc.mean`, and manifest keys); otherwise nil.
    public static func validSite(_ name: String) -> String? {
        let allowed = { (b: UInt8) in
            (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x5F || b == 0x2D
        }
        guard (1...64).contains(name.utf8.count), name.utf8.allSatisfy(allowed) else { return nil }
        return name
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
