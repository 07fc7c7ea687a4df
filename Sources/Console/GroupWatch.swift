public import KafkaIO

/// Which consumer groups the console asks for their committed offsets at each look at the
/// cluster. A cluster holds many groups that read none of this deployment's topics (other
/// applications', or in a test run every earlier test's); asking each of them every few seconds
/// made a look take longer than a minute on a busy broker, and the page showed no flow until
/// it ended. So the groups known to read a watched topic are asked at every look, and of the
/// rest at most `checksPerLook`: first those never asked (those with members before empty
/// ones), then those asked longest ago, once `recheckAfter` has passed (a group can start
/// reading a topic later). Pure: the console tells it what it listed and what it learned.
public struct GroupWatch: Sendable {
    /// Groups not known to read a watched topic asked at most per look.
    public var checksPerLook: Int
    /// Seconds before a group found to read no watched topic is asked again.
    public var recheckAfter: Double
    /// What each group's last answer said, and when.
    private var known: [String: (readsWatched: Bool, at: Double)] = [:]

    public init(checksPerLook: Int = 32, recheckAfter: Double = 60) {
        self.checksPerLook = checksPerLook
        self.recheckAfter = recheckAfter
    }

    /// The groups to ask now, of those `listed`, at time `now` (seconds). Groups no longer
    /// listed are forgotten.
    public mutating func groupsToAsk(listed: [ConsumerGroupListing], now: Double) -> [String] {
        let names = Set(listed.map(\.name))
        known = known.filter { names.contains($0.key) }
        let watched = listed.filter { known[$0.name]?.readsWatched == true }.map(\.name)
        let unasked = listed.filter { known[$0.name] == nil }
            .sorted { ($0.members.isEmpty ? 1 : 0, $0.name) < ($1.members.isEmpty ? 1 : 0, $1.name) }.map(\.name)
        let stale = known.filter { !$0.value.readsWatched && now - $0.value.at >= recheckAfter }
            .sorted { ($0.value.at, $0.key) < ($1.value.at, $1.key) }.map(\.key)
        return watched.sorted() + (unasked + stale).prefix(max(0, checksPerLook))
    }

    /// Records whether `group` was found at `now` to have committed offsets on a watched topic.
    public mutating func learned(_ group: String, readsWatched: Bool, at now: Double) {
        known[group] = (readsWatched, now)
    }
}
