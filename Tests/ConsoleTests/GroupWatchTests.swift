import KafkaIO
import Testing
@testable import Console

struct GroupWatchTests {
    func listing(_ name: String, members: Int = 0) -> ConsumerGroupListing {
        ConsumerGroupListing(name: name, state: members > 0 ? "Stable" : "Empty",
                             members: (0..<members).map { .init(memberID: "m\($0)", clientID: name, host: "/127.0.0.1") })
    }

    @Test func groupsReadingWatchedTopicsAreAskedEveryLookAndTheRestAFewAtATime() {
        var watch = GroupWatch(checksPerLook: 3, recheckAfter: 60)
        // 10 empty groups of other applications, then this deployment's scorer with a member.
        let listed = (0..<10).map { listing("other-\($0)") } + [listing("xray-scorer", members: 1)]
        let first = watch.groupsToAsk(listed: listed, now: 0)
        #expect(first == ["xray-scorer", "other-0", "other-1"], "groups with members are asked first")
        watch.learned("xray-scorer", readsWatched: true, at: 0)
        for name in first.dropFirst() { watch.learned(name, readsWatched: false, at: 0) }

        let second = watch.groupsToAsk(listed: listed, now: 2)
        #expect(second == ["xray-scorer", "other-2", "other-3", "other-4"])
        for name in second.dropFirst() { watch.learned(name, readsWatched: false, at: 2) }
        _ = watch.groupsToAsk(listed: listed, now: 4).dropFirst().map { watch.learned($0, readsWatched: false, at: 4) }
        let fourth = watch.groupsToAsk(listed: listed, now: 6)
        #expect(fourth == ["xray-scorer", "other-8", "other-9"], "every group has been asked once; none is due again")
        for name in fourth.dropFirst() { watch.learned(name, readsWatched: false, at: 6) }
        #expect(watch.groupsToAsk(listed: listed, now: 8) == ["xray-scorer"])

        // After a minute the groups asked longest ago are asked again, oldest first.
        #expect(watch.groupsToAsk(listed: listed, now: 61) == ["xray-scorer", "other-0", "other-1"])
        watch.learned("other-0", readsWatched: true, at: 61)
        watch.learned("other-1", readsWatched: false, at: 61)
        #expect(watch.groupsToAsk(listed: listed, now: 62) == ["other-0", "xray-scorer", "other-2", "other-3", "other-4"])
    }

    @Test func groupsNoLongerListedAreForgotten() {
        var watch = GroupWatch(checksPerLook: 1)
        watch.learned("gone", readsWatched: true, at: 0)
        #expect(watch.groupsToAsk(listed: [listing("new")], now: 1) == ["new"])
        // Listed again later, it is a group never asked.
        #expect(watch.groupsToAsk(listed: [listing("gone")], now: 2) == ["gone"])
        var none = GroupWatch(checksPerLook: 0)
        #expect(none.groupsToAsk(listed: [listing("any")], now: 0).isEmpty)
    }
}
