/// A deterministic patient-wise split: every image of a patient lands on the same side, the
/// same way in every process and run (FNV-1a of the patient id and a salt), so validation
/// images are never trained on and the trainers and evaluators agree without coordination.
public struct PatientSplit: Sendable, Equatable {
    /// Share of patients held out for validation.
    public var validationFraction: Double
    public var salt: String

    public init(validationFraction: Double = 0.15, salt: String = "xray") {
        precondition(validationFraction >= 0 && validationFraction < 1)
        self.validationFraction = validationFraction
        self.salt = salt
    }

    /// True when the patient (or, without one, the image) is held out.
    public func isValidation(patient: String) -> Bool {
        Double(fnv1a64(salt + "/" + patient) % 1_000_000) / 1_000_000 < validationFraction
    }

    /// Splits files by their patient id (the image id when there is none).
    public func split(_ files: [ImageFile]) -> (training: [ImageFile], validation: [ImageFile]) {
        var training: [ImageFile] = [], validation: [ImageFile] = []
        for f in files {
            if isValidation(patient: f.metadata.patientID ?? f.metadata.imageID) { validation.append(f) } else { training.append(f) }
        }
        return (training, validation)
    }
}

/// FNV-1a, 64 bits, of the text's UTF-8 bytes: a stable hash across processes and runs.
func fnv1a64(_ text: String) -> UInt64 {
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}
