import Foundation
public import Wire

/// An image file to publish, with what is known of it.
public struct ImageFile: Sendable, Equatable {
    public var path: String
    public var metadata: ImageMetadata

    public init(path: String, metadata: ImageMetadata) {
        self.path = path
        self.metadata = metadata
    }
}

/// Finds image files under paths and labels them.
///
/// A labelled dataset is recognised by its layout: NIH ChestX-ray14 PNGs are labelled from the
/// NIH table when one is given (`--labels`); files in a folder named NORMAL or PNEUMONIA
/// (the Kermany layout) are labelled `[]` or `["Pneumonia"]`. Anything else is unlabelled.
public enum DatasetScanner {
    public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg", "dcm"]

    /// Every image file under `paths` (files as given, folders recursively, in name order).
    public static func scan(_ paths: [String], nihLabels: NIHLabelTable? = nil) throws -> [ImageFile] {
        var files: [String] = []
        let fm = FileManager.default
        for path in paths {
            var isDirectory: ObjCBool = false
            guard fm.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw BadInput("\(path): no such file or folder")
            }
            if isDirectory.boolValue {
                guard let walker = fm.enumerator(atPath: path) else { continue }
                var found: [String] = []
                for case let relative as String in walker
                where imageExtensions.contains((relative as NSString).pathExtension.lowercased()) {
                    found.append((path as NSString).appendingPathComponent(relative))
                }
                files += found.sorted()
            } else {
                files.append(path)
            }
        }
        return files.map { label($0, nihLabels: nihLabels) }
    }

    /// The image id and labels a file gets from its name and folder.
    public static func label(_ path: String, nihLabels: NIHLabelTable?) -> ImageFile {
        let name = (path as NSString).lastPathComponent
        let stem = (name as NSString).deletingPathExtension
        let folder = ((path as NSString).deletingLastPathComponent as NSString).lastPathComponent.uppercased()
        var metadata = ImageMetadata(imageID: stem)
        if let entry = nihLabels?[name] {
            metadata.labels = entry.labels
            metadata.patientID = entry.patientID
        } else if folder == "NORMAL" || folder == "PNEUMONIA" {
            metadata.labels = folder == "PNEUMONIA" ? ["Pneumonia"] : []
            metadata.patientID = kermanyPatient(stem)
        }
        return ImageFile(path: path, metadata: metadata)
    }

    /// Kermany file names carry the patient: "person1_bacteria_1" → "person1",
    /// "IM-0115-0001" → "IM-0115", "NORMAL2-IM-1427-0001" → "NORMAL2-IM-1427".
    static func kermanyPatient(_ stem: String) -> String {
        if stem.hasPrefix("person"), let cut = stem.firstIndex(of: "_") { return String(stem[..<cut]) }
        if let cut = stem.lastIndex(of: "-") { return String(stem[..<cut]) }
        return stem
    }
}
