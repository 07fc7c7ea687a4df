/// A set that remembers only its latest `capacity` members: for ids read from a topic, whose
/// number grows with the topic's history.
struct RecentSet: Sendable {
    let capacity: Int
    private var members: Set<String> = []
    private var order: [String] = []
    private var head = 0

    init(capacity: Int) { self.capacity = max(1, capacity) }

    var count: Int { members.count }

    func contains(_ member: String) -> Bool { members.contains(member) }

    /// Adds `member`, forgetting the oldest one when full.
    mutating func insert(_ member: String) {
        guard members.insert(member).inserted else { return }
        order.append(member)
        if members.count > capacity {
            members.remove(order[head])
            head += 1
            if head > 1024 && head * 2 > order.count {
                order.removeFirst(head)
                head = 0
            }
        }
    }
}
