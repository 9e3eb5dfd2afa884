import Testing
import YADTQCore

@Suite("Redis Cluster rules")
struct RedisClusterTests {
    @Test("hash slots follow the cluster specification, hash tags included")
    func hashSlots() {
        #expect(HashSlot.crc16(Array("123456789".utf8)) == 0x31C3, "the specification's check value")
        #expect(HashSlot(key: "foo").value == 12182)
        #expect(HashSlot(key: "{user1000}.following") == HashSlot(key: "{user1000}.followers"))
        #expect(HashSlot(key: "{user1000}.following") == HashSlot(key: "user1000"))
        #expect(
            HashSlot(key: "foo{}{bar}").value == Int(HashSlot.crc16(Array("foo{}{bar}".utf8))) % 16384,
            "an empty tag hashes the whole key")
        #expect(HashSlot(key: "foo{}{bar}") != HashSlot(key: ""))
        #expect(HashSlot(key: "foo{}{bar}") != HashSlot(key: "bar"))
        #expect(HashSlot(key: "foo{{bar}}zap") == HashSlot(key: "{bar"))
    }

    @Test("the slot map finds each slot's master and counts its replicas")
    func topology() {
        let a = RedisURL.Node(host: "127.0.0.1", port: 7001)
        let b = RedisURL.Node(host: "127.0.0.1", port: 7002)
        let r = RedisURL.Node(host: "127.0.0.1", port: 7101)
        let map = ClusterTopology(ranges: [
            .init(slots: 8192...16383, master: b),
            .init(slots: 0...8191, master: a, replicas: [r]),
        ])
        #expect(map.master(for: HashSlot(value: 0)) == a)
        #expect(map.master(for: HashSlot(value: 8191)) == a)
        #expect(map.master(for: HashSlot(value: 8192)) == b)
        #expect(map.master(for: HashSlot(value: 16383)) == b)
        #expect(map.replicaCount(of: a) == 1 && map.replicaCount(of: b) == 0)
        #expect(map.masters == [a, b])
        let partial = ClusterTopology(ranges: [.init(slots: 0...100, master: a)])
        #expect(partial.master(for: HashSlot(value: 101)) == nil, "an unserved slot has no master")
    }

    @Test("the slot map is read again once it is 10 s old, so a replica back since is waited for; not at every call")
    func slotMapAge() {
        let master = RedisURL.Node(host: "127.0.0.1", port: 7001)
        let replica = RedisURL.Node(host: "127.0.0.1", port: 7101)
        // Read while the replica was down: CLUSTER SLOTS left it out.
        let withoutReplica = ClusterTopology(ranges: [.init(slots: 0...16383, master: master)])
        let withReplica = ClusterTopology(ranges: [.init(slots: 0...16383, master: master, replicas: [replica])])
        let start = ContinuousClock.now
        var cache = SlotMapCache()
        #expect(cache.current(at: start) == nil, "no map yet: read one")
        cache.store(withoutReplica, readAt: start)
        #expect(cache.current(at: start + .milliseconds(9_999)) == withoutReplica, "the calls of the next 10 s route by it")
        #expect(cache.current(at: start + SlotMapCache.maximumAge) == nil, "10 s old: read it again")
        #expect(cache.latest == withoutReplica, "the call in progress counts the replicas of the map it was routed by")
        cache.store(withReplica, readAt: start + .seconds(10))
        #expect(cache.current(at: start + .seconds(19))?.replicaCount(of: master) == 1, "the replica is waited for again")
        cache.forget()
        #expect(cache.current(at: start + .seconds(11)) == nil && cache.latest == nil, "after a failure: read again")
    }

    @Test("MOVED and ASK replies are read, an unknown host is the answering node's; other errors are not redirections")
    func redirections() {
        let answering = RedisURL.Node(host: "10.0.0.9", port: 7000)
        func redirect(_ message: String) -> ClusterRedirect? { ClusterRedirect(errorMessage: message, answeredBy: answering) }
        #expect(redirect("MOVED 3999 127.0.0.1:6381") == .moved(HashSlot(value: 3999), RedisURL.Node(host: "127.0.0.1", port: 6381)))
        #expect(redirect("ASK 3999 10.0.0.2:7000") == .ask(HashSlot(value: 3999), RedisURL.Node(host: "10.0.0.2", port: 7000)))
        #expect(redirect("MOVED 12 [::1]:7000") == .moved(HashSlot(value: 12), .init(host: "::1", port: 7000)))
        #expect(redirect("MOVED 12 :7001") == .moved(HashSlot(value: 12), .init(host: "10.0.0.9", port: 7001)))
        #expect(redirect("ASK 12 ?:7002") == .ask(HashSlot(value: 12), .init(host: "10.0.0.9", port: 7002)))
        #expect(redirect("ERR wrong number of arguments") == nil)
        #expect(redirect("MOVED x y") == nil)
    }

    @Test("YADTQ_REDIS: one node is a single Redis, several or cluster=yes a cluster")
    func urls() throws {
        let single = try RedisURL(parsing: "redis://:se%40cret@10.0.0.1:7000/3")
        #expect(!single.isCluster && single.host == "10.0.0.1" && single.port == 7000 && single.database == 3)
        #expect(single.password == "se@cret")
        let cluster = try RedisURL(parsing: "redis://:pw@h1:7001,h2:7002,[::1]:7003")
        #expect(cluster.isCluster && cluster.password == "pw")
        #expect(cluster.nodes == [.init(host: "h1", port: 7001), .init(host: "h2", port: 7002), .init(host: "::1", port: 7003)])
        #expect(try RedisURL(parsing: "redis://h1:7001?cluster=yes").isCluster)
        #expect(try !RedisURL(parsing: "redis://h1?cluster=no").isCluster)
        #expect(cluster.description == "redis://:***@h1:7001,h2:7002,[::1]:7003/0", "no password in logs")
        #expect(throws: YADTQError.self) { try RedisURL(parsing: "redis://h1:7001,h2:7002/2") }
        #expect(throws: YADTQError.self) { try RedisURL(parsing: "redis://h1:x") }
        #expect(throws: YADTQError.self) { try RedisURL(parsing: "redis://h1?cluster=maybe") }
        #expect(throws: YADTQError.self) { try RedisURL(parsing: "http://h1") }
    }

    @Test("YADTQ_REDIS names an ACL user with its password; without a user YADTQ logs in as the default one")
    func users() throws {
        let user = try RedisURL(parsing: "redis://yadtq%2Dw:p%3Aw@10.0.0.1:7000/1")
        #expect(user.username == "yadtq-w" && user.password == "p:w" && user.database == 1)
        #expect(user.description == "redis://yadtq-w:***@10.0.0.1:7000/1", "the user in logs, not the password")
        let cluster = try RedisURL(parsing: "redis://ops:pw@h1:7001,h2:7002")
        #expect(cluster.isCluster && cluster.username == "ops" && cluster.password == "pw")
        let passwordOnly = try RedisURL(parsing: "redis://:pw@h1")
        #expect(passwordOnly.username == nil && passwordOnly.password == "pw")
        #expect(try RedisURL(parsing: "redis://h1").username == nil)
        #expect {
            try RedisURL(parsing: "redis://ops@h1")
        } throws: { error in
            "\(error)".contains("the user 'ops' comes without a password") && "\(error)".contains("redis://[[user]:password@]")
        }
    }

    @Test("tasks spread over 16 shards whose hash tags fall in 16 equal parts of the slot space")
    func shards() throws {
        let single = RedisKeys(prefix: "yadtq:")
        #expect(single.records(of: "a") == "yadtq:records", "a single Redis keeps plain names")
        let keys = RedisKeys(prefix: "yadtq:", for: try RedisURL(parsing: "redis://h1:1,h2:2"))
        #expect(keys.shards == RedisKeys.clusterShards)
        var used: Set<Int> = []
        for index in 0..<2000 {
            let id = "task-\(index)"
            let key = keys.records(of: id)
            let slot = HashSlot(key: key)
            #expect(slot.value * keys.shards / HashSlot.count == keys.shard(of: id), "\(key)")
            used.insert(keys.shard(of: id))
        }
        #expect(used.count == keys.shards)
    }
}
