import ArgumentParser
import Dicom

/// Where the site's pseudonym key comes from: a file or the environment, never an argument.
struct PseudonymKeyOptions: ParsableArguments {
    @Option(help: "A file holding the pseudonym key for DICOM de-identification (else the environment variable XRAY_PSEUDONYM_KEY).")
    var keyFile: String?

    /// The pseudonymiser; fails, saying how to provide a key, when there is none.
    func pseudonymiser() throws -> Pseudonymiser {
        do {
            return try Pseudonymiser.load(file: keyFile, environment: "XRAY_PSEUDONYM_KEY")
        } catch {
            throw ValidationError(error.description)
        }
    }
}
