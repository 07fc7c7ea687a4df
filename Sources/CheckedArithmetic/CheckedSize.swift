/// Sizes computed from numbers that came from outside (record headers, dimensions in a
/// record): every product and sum is checked, so a lying field gives an error, never a trap.
public enum CheckedSize {
    /// The product of `factors`, or nil if any is negative, a partial product overflows or
    /// the product passes `limit`.
    public static func product(_ factors: some Sequence<Int>, limit: Int = Int.max) -> Int? {
        var result = 1
        for f in factors {
            guard f >= 0 else { return nil }
            let (p, overflow) = result.multipliedReportingOverflow(by: f)
            guard !overflow else { return nil }
            result = p
        }
        return result <= limit ? result : nil
    }

    /// `a + b`, or nil if it overflows.
    public static func sum(_ a: Int, _ b: Int) -> Int? {
        let (s, overflow) = a.addingReportingOverflow(b)
        return overflow ? nil : s
    }

    /// The index of the first value that is NaN or infinite, if any.
    public static func firstNonFinite(_ values: some Collection<Float>) -> Int? {
        var index = 0
        for v in values {
            if !v.isFinite { return index }
            index += 1
        }
        return nil
    }
}
