import Wire

/// The NIH ChestX-ray14 label table (`Data_Entry_2017*.csv`): findings and patient by image file name.
public struct NIHLabelTable: Sendable {
    public struct Entry: Sendable, Equatable {
        /// Positive findings in NIH order of the CSV; [] for "No Finding".
        public var labels: [String]
        public var patientID: String
    }
    public private(set) var entries: [String: Entry] = [:]

    /// Parses the CSV text. Throws if the header lacks the columns this needs.
    public init(csv text: String) throws {
        var lines = text.split(whereSeparator: \.isNewline).makeIterator()
        guard let header = lines.next() else { throw BadInput("the NIH label table is empty") }
        let columns = header.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        guard let idColumn = columns.firstIndex(of: "Image Index"),
              let labelColumn = columns.firstIndex(of: "Finding Labels"),
              let patientColumn = columns.firstIndex(of: "Patient ID") else {
            throw BadInput("not an NIH label table: the header needs Image Index, Finding Labels and Patient ID")
        }
        while let line = lines.next() {
            let fields = line.split(separator: ",", omittingEmptySubsequences: false)
            guard fields.count > max(idColumn, labelColumn, patientColumn) else { continue }
            let findings = fields[labelColumn].split(separator: "|").map(String.init)
                .filter { $0 != "No Finding" }
            entries[String(fields[idColumn])] = Entry(labels: findings, patientID: String(fields[patientColumn]))
        }
    }

    public subscript(fileName: String) -> Entry? { entries[fileName] }
}
