import Dicom
import Engine
import Foundation
import Imaging
import Wire

// The kinds of fault (`BadInput`, `ConfigurationError`, `CorruptState`) are in
// Wire/Faults.swift; what a stage does with each is decided here and in the runner.

/// The short code of an error's kind, as dead-letter headers and metrics carry it.
public func faultCode(_ error: any Error) -> String {
    switch error {
    case let e as BadInput: e.code
    case let e as WireError: e.reasonCode
    case let e as ImagingError: e.reasonCode
    case let e as DicomError: e.reasonCode
    case let e as EngineError:
        switch e {
        case .malformed: "malformed"
        case .incompatible: "incompatible"
        case .unsupported: "unsupported"
        }
    case is DecodingError: "malformed-json"
    case is CorruptState: "corrupt-state"
    default: "other"
    }
}
