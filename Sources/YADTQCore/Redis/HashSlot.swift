/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of the key, or of its hash tag
/// (the text between the first `{` and the next `}`, when not empty), modulo 16384. Keys
/// with the same tag live in the same slot, so one script call may touch all of them.
public struct HashSlot: Hashable, Sendable, Comparable {
    public static let count = 16384
    public let value: Int

    public init(value: Int) {
        self.value = value
    }

    public init(key: some Collection<UInt8>) {
        var hashed = Array(key)
        if let open = hashed.firstIndex(of: UInt8(ascii: "{")),
            let close = hashed[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1
        {
            hashed = Array(hashed[(open + 1)..<close])
        }
        value = Int(Self.crc16(hashed)) % Self.count
    }

    public init(key: String) {
        self.init(key: key.utf8)
    }

    public static func < (lhs: HashSlot, rhs: HashSlot) -> Bool { lhs.value < rhs.value }

    /// CRC16-CCITT (XMODEM): polynomial 0x1021, initial value 0, as the cluster specification says.
    public static func crc16(_ bytes: [UInt8]) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}
