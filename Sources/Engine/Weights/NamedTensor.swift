/// A tensor with its state-dict name, as stored in a weight file.
public struct NamedTensor: Sendable, Equatable {
    public enum Values: Sendable, Equatable {
        case float32([Float])
        case int64([Int64])

        public var count: Int {
            switch self {
            case .float32(let v): v.count
            case .int64(let v): v.count
            }
        }
    }

    public var name: String
    public var shape: [Int]
    public var values: Values

    public init(name: String, shape: [Int], values: Values) {
        precondition(shape.reduce(1, *) == values.count, "\(name): \(values.count) values for shape \(shape)")
        self.name = name; self.shape = shape; self.values = values
    }

    public init(name: String, shape: [Int], floats: [Float]) {
        self.init(name: name, shape: shape, values: .float32(floats))
    }

    /// The values as floats (integers converted).
    public var floats: [Float] {
        switch values {
        case .float32(let v): v
        case .int64(let v): v.map(Float.init)
        }
    }
}
