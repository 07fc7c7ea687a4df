/// The product of dimensions read from a file, or nil if one is negative or the product
/// passes `limit` (which rules out overflow): a lying shape gives an error, never a trap.
func checkedProduct(_ dims: [Int], limit: Int) -> Int? {
    var product = 1
    for d in dims {
        guard d >= 0 else { return nil }
        let (p, overflow) = product.multipliedReportingOverflow(by: d)
        guard !overflow, p <= limit else { return nil }
        product = p
    }
    return product
}
